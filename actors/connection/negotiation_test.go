package connection

import (
	"errors"
	"testing"
	"time"

	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/tacplus"
)

// TestNegotiationEndsWhenFirstGivesUp: the request that carries the single-connect negotiation is
// cancelled by its caller before the server answers (issue 12 point 2). The negotiation ends with it:
// the request queued behind it goes back to the supervisor (ReturnNegotiation, not "refused"), the
// socket closes normally, and nothing waits for an answer that will never matter.
func TestNegotiationEndsWhenFirstGivesUp(t *testing.T) {
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), func(c *Config) { c.NegotiationWait = -1 })
	a := h.loginAs("alice", "pw-a", time.Time{})
	b := h.loginAs("bob", "pw-b", time.Time{})
	c := p.accept()
	c.readStart()
	c.quiet() // bob waits behind the negotiation
	h.sys.Root.Send(h.conn, &messages.Abort{ReqID: a, Reason: "caller gone"})
	if o := h.outcome(); o.ReqID != a || !errors.Is(o.Err, tacplus.ErrAborted) {
		t.Fatalf("alice: %+v", o)
	}
	r := event[*messages.Returned](t, h)
	if r.Reason != messages.ReturnNegotiation || len(r.Starts) != 1 || r.Starts[0].Req.ID != b {
		t.Fatalf("returned %+v, want bob back with ReturnNegotiation", r)
	}
	event[*messages.ConnectionIdle](t, h)
	h.noFailure()
}

// TestNegotiationWaitBound: the server takes its time over the first request (a production server delays
// FAIL replies by a second). A request queued behind the pending negotiation is handed back once the
// bound passed, to run on a connection of its own, while the first still completes on this one. No
// timing is asserted: the test waits for the hand-back however long a loaded machine takes.
func TestNegotiationWaitBound(t *testing.T) {
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), func(c *Config) { c.NegotiationWait = 10 * time.Millisecond })
	a := h.loginAs("alice", "pw-a", time.Time{})
	b := h.loginAs("bob", "pw-b", time.Time{})
	c := p.accept()
	first, _ := c.readStart()
	r := event[*messages.Returned](t, h)
	if r.Reason != messages.ReturnNegotiation || len(r.Starts) != 1 || r.Starts[0].Req.ID != b {
		t.Fatalf("returned %+v, want bob back with ReturnNegotiation", r)
	}
	c.send(reply(first, first.SessionID, 2, 0), fail)
	if o := h.outcome(); o.ReqID != a || !errors.Is(o.Err, tacplus.ErrAuthenticationFailed) {
		t.Fatalf("alice: %+v", o)
	}
	h.noFailure()
}

// TestExpiredRequestNeverSent: a request whose caller's deadline has passed when the connection gets to
// it is answered (a timeout marked CallerDeadline) and never written (issue 12 point 3).
func TestExpiredRequestNeverSent(t *testing.T) {
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), nil)
	h.loginAs("alice", "pw", time.Now().Add(-time.Second))
	o := h.outcome()
	if !errors.Is(o.Err, tacplus.ErrTimeout) || !o.CallerDeadline || o.Retryable {
		t.Fatalf("outcome %v caller_deadline=%v retryable=%v", o.Err, o.CallerDeadline, o.Retryable)
	}
	c := p.accept()
	c.c.SetReadDeadline(time.Now().Add(quietFor))
	var buf [1]byte
	if n, _ := c.c.Read(buf[:]); n > 0 {
		t.Fatal("the expired request reached the server")
	}
}

// TestCallerDeadlineInFlight: the caller's deadline passes while the server holds the turn. The outcome
// says the caller gave up (CallerDeadline), not that the server timed out (issue 12 point 4), and the
// server's late reply is dropped without harm.
func TestCallerDeadlineInFlight(t *testing.T) {
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), nil)
	h.loginAs("alice", "pw", time.Now().Add(time.Second)) // generous: the START must go out first
	c := p.accept()
	hd, _ := c.readStart()
	o := h.outcome()
	if !errors.Is(o.Err, tacplus.ErrTimeout) || !o.CallerDeadline {
		t.Fatalf("outcome %v caller_deadline=%v", o.Err, o.CallerDeadline)
	}
	c.send(reply(hd, hd.SessionID, 2, 0), pass)
	event[*messages.ConnectionIdle](t, h) // the negotiation ended unanswered: the socket closes, no failure
	h.noFailure()
}
