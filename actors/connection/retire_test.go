package connection

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/tacplus"
)

func (h *harness) counts() *messages.ConnectionCounts {
	h.t.Helper()
	r, err := h.sys.Root.RequestFuture(h.conn, &messages.ConnectionStatus{}, waitLimit).Result()
	if err != nil {
		h.t.Fatalf("status: %v", err)
	}
	return r.(*messages.ConnectionCounts)
}

// TestCounts: the connection answers its real in-flight and queued counts (issue 12 point 11).
func TestCounts(t *testing.T) {
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), func(c *Config) { c.NegotiationWait = -1 })
	h.loginAs("alice", "pw-a", time.Time{})
	h.loginAs("bob", "pw-b", time.Time{})
	c := p.accept()
	first, _ := c.readStart() // alice is on the wire: bob waits behind the negotiation
	if n := h.counts(); n.InFlight != 1 || n.Queued != 1 || n.State != "negotiating" {
		t.Fatalf("counts %+v, want 1 in flight, 1 queued, negotiating", n)
	}
	c.send(reply(first, first.SessionID, 2, tacplus.FlagSingleConnect), pass)
	second, _ := c.readStart()
	// Alice's session reports its end on its own time: wait for the count to settle.
	waitFor(t, "bob alone in flight on a multiplexed socket", func() bool {
		n := h.counts()
		return n.InFlight == 1 && n.Queued == 0 && n.Multiplex
	})
	c.send(reply(second, second.SessionID, 2, 0), pass)
	h.outcomes(2)
}

// TestRetire: a retired connection takes no new sessions (they go back, ReturnRetired), lets its running
// session finish, then closes and stops: not a failure (issue 12 point 9).
func TestRetire(t *testing.T) {
	h, c := multiplexed(t)
	a := h.loginAs("alice", "pw-a", time.Time{})
	hd, _ := c.readStart()
	h.sys.Root.Send(h.conn, &messages.Retire{})
	b := h.loginAs("bob", "pw-b", time.Time{})
	r := event[*messages.Returned](t, h)
	if r.Reason != messages.ReturnRetired || len(r.Starts) != 1 || r.Starts[0].Req.ID != b {
		t.Fatalf("returned %+v, want bob back with ReturnRetired", r)
	}
	// The warm-up session may not have reported its end yet (its SessionEnded races the test's messages).
	waitFor(t, "retired with alice alone in flight", func() bool { n := h.counts(); return n.Retired && n.InFlight == 1 })
	c.send(reply(hd, hd.SessionID, 2, 0), pass)
	if o := h.outcome(); o.ReqID != a || o.Err != nil {
		t.Fatalf("alice: %+v, want her PASS: retiring does not cut running sessions", o)
	}
	if term := event[*actor.Terminated](t, h); !term.Who.Equal(h.conn) {
		t.Fatalf("terminated %v", term.Who)
	}
	c.c.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := c.c.Read(make([]byte, 1)); err == nil {
		t.Fatal("socket still open")
	}
	h.noFailure()
}
