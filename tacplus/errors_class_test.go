package tacplus_test

import (
	"fmt"
	"testing"

	"github.com/tacagent/tacagent/tacplus"
)

// TestClassOfOutermostWins: the class an error declares beats the classes its causes match.
func TestClassOfOutermostWins(t *testing.T) {
	protocol := &tacplus.DecodeError{Reason: tacplus.ReasonLength, Field: "x"}
	for _, c := range []struct {
		err  error
		want error
	}{
		{&tacplus.Error{Class: tacplus.ErrConfig, Err: protocol}, tacplus.ErrConfig},
		{fmt.Errorf("wrapped: %w", &tacplus.Error{Class: tacplus.ErrTimeout, Err: protocol}), tacplus.ErrTimeout},
		{protocol, tacplus.ErrProtocol},
		{&tacplus.DecodeError{Reason: tacplus.ReasonBadSecret}, tacplus.ErrBadSecret},
		{fmt.Errorf("plain: %w", tacplus.ErrDenied), tacplus.ErrDenied},
	} {
		if got := tacplus.ClassOf(c.err); got != c.want {
			t.Errorf("ClassOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
