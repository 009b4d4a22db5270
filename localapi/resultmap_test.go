package localapi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tacagent/tacagent/policy"
	"github.com/tacagent/tacagent/tacplus"
)

type resultHandler struct{ err error }

func (resultHandler) Kind() string { return "test" }
func (h resultHandler) Authenticate(context.Context, policy.Request, policy.Conversation) (policy.Reply, error) {
	return policy.Reply{}, h.err
}

// TestAuthenResultOfDenial: the stack's outcome reaches the wire as the result a PAM module maps. A stack
// denial (no line decided) and a FAIL behind an ignored unavailable line are "fail", never "unavailable"
// or "error", which a fallback line (authinfo_unavail=ignore) would skip.
func TestAuthenResultOfDenial(t *testing.T) {
	unavail := &tacplus.Error{Class: tacplus.ErrTimeout, Server: "a:49"}
	fail := &tacplus.Error{Class: tacplus.ErrAuthenticationFailed, Server: "b:49"}
	aborted := &tacplus.Error{Class: tacplus.ErrAborted}
	for _, tc := range []struct {
		name     string
		controls []string
		errs     []error
		want     string
	}{
		{"sufficient U then sufficient F", []string{"sufficient", "sufficient"}, []error{unavail, fail}, ResultFail},
		{"optional U alone", []string{"optional"}, []error{unavail}, ResultFail},
		{"method list U then end F", []string{"[success=done fail=die unavailable=ignore default=die]", "[success=done default=die]"}, []error{unavail, fail}, ResultFail},
		{"method list U then end U", []string{"[success=done fail=die unavailable=ignore default=die]", "[success=done default=die]"}, []error{unavail, unavail}, ResultUnavailable},
		{"required aborted", []string{"required"}, []error{aborted}, ResultError},
		{"required pass", []string{"required"}, []error{nil}, ResultPass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			elems := make([]policy.Element, len(tc.controls))
			for i, c := range tc.controls {
				ctl, err := policy.ParseControl(c)
				if err != nil {
					t.Fatal(err)
				}
				elems[i] = policy.Element{Name: string(rune('a' + i)), Handler: resultHandler{tc.errs[i]}, Control: ctl}
			}
			st, err := policy.NewStack(time.Now, elems...)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = st.Authenticate(context.Background(), policy.Request{User: "u", Password: "p", Type: policy.PAP, Service: policy.Login}, nil, nil)
			if got := authenResultOf(err); got != tc.want {
				t.Errorf("authenResultOf(%v) = %q, want %q", err, got, tc.want)
			}
			if tc.want == ResultFail && !errors.Is(err, tacplus.ErrAuthenticationFailed) {
				t.Errorf("err %v does not match ErrAuthenticationFailed", err)
			}
		})
	}
}
