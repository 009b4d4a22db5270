package serverfsm

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/tacplus"
)

// TestBlame (issue 12 point 4): which session failures are the server's own and start a dead-time. Every
// row is checked twice: as it is, and with the caller's deadline (or its user's answer timeout) being the
// cause, which never blames the server.
func TestBlame(t *testing.T) {
	te := func(class, cause error) error { return &tacplus.Error{Class: class, Server: "s", Err: cause} }
	bad := func(r tacplus.Reason) error { return &tacplus.DecodeError{Reason: r} }
	for _, tc := range []struct {
		name  string
		err   error
		blame bool
	}{
		{"no error", nil, false},
		{"connect failed", te(tacplus.ErrUnreachable, errors.New("connection refused")), true},
		{"server's reply timeout", te(tacplus.ErrTimeout, nil), true},
		{"key mismatch", te(tacplus.ErrBadSecret, bad(tacplus.ReasonBadSecret)), true},
		{"protocol: wrong seq_no", te(tacplus.ErrProtocol, bad(tacplus.ReasonSeq)), true},
		{"protocol: wrong session", te(tacplus.ErrProtocol, bad(tacplus.ReasonSession)), true},
		{"protocol: bad status", te(tacplus.ErrProtocol, bad(tacplus.ReasonEnum)), true},
		{"protocol: version", te(tacplus.ErrProtocol, bad(tacplus.ReasonVersion)), true},
		{"protocol: too many prompts", te(tacplus.ErrProtocol, fsm.ErrTooManyPrompts), true},
		{"lost to a desync", te(tacplus.ErrConnectionLost, te(tacplus.ErrProtocol, bad(tacplus.ReasonSession))), true},
		{"protocol: our input refused", te(tacplus.ErrProtocol, fmt.Errorf("%w: input too long", fsm.ErrUnexpectedEvent)), false},
		{"protocol: late event", te(tacplus.ErrProtocol, fsm.ErrFinished), false},
		{"protocol: no session id left", te(tacplus.ErrProtocol, nil), false},
		{"lost (idle close race)", te(tacplus.ErrConnectionLost, errors.New("EOF")), false},
		{"FAIL", te(tacplus.ErrAuthenticationFailed, nil), false},
		{"authorization FAIL", te(tacplus.ErrDenied, nil), false},
		{"ERROR", te(tacplus.ErrServerError, nil), false},
		{"aborted by the caller", te(tacplus.ErrAborted, nil), false},
		{"config", te(tacplus.ErrConfig, nil), false},
		{"unclassified", errors.New("strange"), false},
	} {
		if got := Blame(tc.err, false); got != tc.blame {
			t.Errorf("%s: Blame = %v, want %v", tc.name, got, tc.blame)
		}
		if Blame(tc.err, true) {
			t.Errorf("%s with the caller's deadline: blamed on the server", tc.name)
		}
	}
}
