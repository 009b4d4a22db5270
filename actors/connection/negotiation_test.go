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
	// Once the session's end is recorded, the negotiation has ended unanswered: the socket closes (no
	// failure), and the server's late reply finds nobody to harm.
	waitFor(t, "the session's end to be recorded", func() bool { return h.counts().InFlight == 0 })
	c.send(reply(hd, hd.SessionID, 2, 0), pass)
	event[*messages.ConnectionIdle](t, h)
	h.noFailure()
}

// TestRememberedAgreement: the supervisor remembers that the server agreed to single-connect: on a new
// socket the queued requests go out at once (only the first asks), nothing waits for the first reply.
func TestRememberedAgreement(t *testing.T) {
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), func(c *Config) { c.Negotiation = NegotiationAgreed })
	h.loginAs("alice", "pw-a", time.Time{})
	h.loginAs("bob", "pw-b", time.Time{})
	c := p.accept()
	first, _ := c.readStart()
	second, _ := c.readStart() // before any reply
	if first.Flags&tacplus.FlagSingleConnect == 0 || second.Flags&tacplus.FlagSingleConnect != 0 {
		t.Fatalf("flags %v %v: only the first packet asks", first.Flags, second.Flags)
	}
	c.send(reply(first, first.SessionID, 2, tacplus.FlagSingleConnect), pass)
	c.send(reply(second, second.SessionID, 2, 0), pass)
	for _, o := range h.outcomes(2) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
	}
	h.noFailure()
}

// TestRememberedAgreementWithdrawn: the server no longer agrees and closes after its first reply (a
// classic one-session server). The session sent at once is lost and retryable, new requests go back as
// refused, and the actor does not fail: the loss was our optimism, not the server's failure.
func TestRememberedAgreementWithdrawn(t *testing.T) {
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), func(c *Config) { c.Negotiation = NegotiationAgreed })
	h.loginAs("alice", "pw-a", time.Time{})
	h.loginAs("bob", "pw-b", time.Time{})
	c := p.accept()
	first, _ := c.readStart()
	c.readStart()
	c.send(reply(first, first.SessionID, 2, 0), pass) // no flag: refused
	if n := event[*messages.Negotiated](t, h); n.SingleConnect {
		t.Fatalf("negotiated %+v", n)
	}
	carol := h.loginAs("carol", "pw-c", time.Time{})
	if r := event[*messages.Returned](t, h); r.Reason != messages.ReturnRefused || r.Starts[0].Req.ID != carol {
		t.Fatalf("returned %+v, want carol back as refused", r)
	}
	c.c.Close()
	var lost int
	for _, o := range h.outcomes(2) {
		switch {
		case o.Err == nil:
		case errors.Is(o.Err, tacplus.ErrConnectionLost) && o.Retryable:
			lost++
		default:
			t.Errorf("outcome %v retryable=%v", o.Err, o.Retryable)
		}
	}
	if lost != 1 {
		t.Errorf("%d sessions lost, want bob's", lost)
	}
	event[*messages.ConnectionIdle](t, h)
	h.noFailure()
}

// TestExpiredNotHandedBack: a queued request whose caller's deadline passed while it waited is answered
// where it is, not handed back to be sent elsewhere (issue 12 point 3); a live one goes back.
func TestExpiredNotHandedBack(t *testing.T) {
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), func(c *Config) { c.NegotiationWait = -1 })
	a := h.loginAs("alice", "pw-a", time.Time{})
	c := p.accept()
	c.readStart()
	expired := h.loginAs("bob", "pw-b", time.Now().Add(-time.Millisecond)) // queued behind the negotiation
	live := h.loginAs("carol", "pw-c", time.Time{})
	h.sys.Root.Send(h.conn, &messages.Abort{ReqID: a, Reason: "caller gone"}) // ends the negotiation
	got := h.outcomes(2)
	if o := got[expired]; o == nil || !errors.Is(o.Err, tacplus.ErrTimeout) || !o.CallerDeadline {
		t.Fatalf("bob: %+v, want answered as expired", o)
	}
	r := event[*messages.Returned](t, h)
	if len(r.Starts) != 1 || r.Starts[0].Req.ID != live {
		t.Fatalf("returned %d requests, want carol's only", len(r.Starts))
	}
}

// TestRestartForgetsAgreement: the remembered agreement is forgotten on a failure (issue 12 point 2). A
// primary spawned with NegotiationAgreed that fails and is restarted negotiates afresh on its new socket:
// the second request waits for the first reply instead of going out at once (contrast
// TestRememberedAgreement, where it goes out before any reply).
func TestRestartForgetsAgreement(t *testing.T) {
	p := newPeer(t, key)
	h := startStand(t, p.ln.Addr().String(), true, func(c *Config) {
		c.Negotiation = NegotiationAgreed
		c.NegotiationWait = -1
	})
	h.loginAs("alice", "pw-a", time.Time{})
	c := p.accept()
	c.readStart()
	c.c.Close() // lost with a session in flight: a Failure, and the stand restarts the actor
	if o := h.outcome(); !errors.Is(o.Err, tacplus.ErrConnectionLost) {
		t.Fatalf("outcome %v, want ErrConnectionLost", o.Err)
	}
	select {
	case f := <-h.failures:
		if f == nil {
			t.Fatal("failure without a *Failure")
		}
	case <-time.After(waitLimit):
		t.Fatal("no failure")
	}
	bob := h.loginAs("bob", "pw-b", time.Time{})
	carol := h.loginAs("carol", "pw-c", time.Time{})
	c2 := p.accept()
	first, user := c2.readStart()
	if first.Flags&tacplus.FlagSingleConnect == 0 || user != "pw-b" {
		t.Fatalf("first packet on the new socket: flags %v data %q, want bob's START asking single-connect", first.Flags, user)
	}
	// Both StartSessions were handled before the dial ended and bob's START went out: with a remembered
	// agreement carol's would have gone out in the same step.
	if n := h.counts(); n.InFlight != 1 || n.Queued != 1 {
		t.Fatalf("after restart: %d in flight, %d queued; want carol queued behind the negotiation", n.InFlight, n.Queued)
	}
	c2.send(reply(first, first.SessionID, 2, tacplus.FlagSingleConnect), pass)
	second, _ := c2.readStart()
	c2.send(reply(second, second.SessionID, 2, 0), pass)
	got := h.outcomes(2)
	for _, id := range []uint64{bob, carol} {
		if o := got[id]; o == nil || o.Err != nil {
			t.Fatalf("request %d: %+v", id, o)
		}
	}
}

// TestCancelledRequestNeverSent: a request whose caller has cancelled (Request.Gone closed) when the
// connection gets to it is answered aborted, not retryable, and nothing of it is written, although no
// Cancel message has reached the connection (the check does not wait for the supervisor's relay).
func TestCancelledRequestNeverSent(t *testing.T) {
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), nil)
	gone := make(chan struct{})
	close(gone)
	h.sys.Root.Send(h.conn, &messages.StartSession{ReplyTo: h.replies.PID(), Timeout: waitLimit,
		Req: &messages.Request{ID: reqIDs.Add(1), Gone: gone, Authen: &messages.AuthenRequest{Action: tacplus.ActionLogin,
			Type: tacplus.AuthenTypePAP, Service: tacplus.ServiceLogin, User: "alice", Password: []byte("pw")}}})
	o := h.outcome()
	if !errors.Is(o.Err, tacplus.ErrAborted) || o.Retryable {
		t.Fatalf("outcome %v retryable=%v, want aborted, not retryable", o.Err, o.Retryable)
	}
	c := p.accept()
	c.c.SetReadDeadline(time.Now().Add(quietFor))
	var buf [1]byte
	if n, _ := c.c.Read(buf[:]); n > 0 {
		t.Fatal("the cancelled request reached the server")
	}
}
