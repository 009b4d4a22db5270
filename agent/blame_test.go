package agent_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// Issue 12 point 4 at agent level: dead-time is the server's own failures, a protocol error included; the
// caller's side (its deadline: TestCallerDeadlineDoesNotDeadTime; its user's answer) never.

// TestProtocolErrorDeadTimes: a primary that answers with a reply out of sequence is dead-timed (the
// desync also holds down its multiplexing); the next logins go to the secondary without a session on the
// primary.
func TestProtocolErrorDeadTimes(t *testing.T) {
	prim := startServer(t, func(c *tacplustest.Config) { c.Faults = tacplustest.Faults{WrongSeq: 1} })
	sec := startServer(t, nil)
	h := newAgent(t, agent.Config{Servers: []agent.Server{server(prim.Addr()), server(sec.Addr())}, DeadTime: time.Minute})
	_, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	wantClass(t, err, tacplus.ErrProtocol)
	if v := h.metric(h.m().ServerDead.WithLabelValues(prim.Addr())); v != 1 {
		t.Fatalf("tacagent_server_dead = %v after a protocol error, want 1", v)
	}
	before := prim.Stats().Sessions
	for range 3 {
		if r := h.login(t, "alice", "alice-pw"); r.Server != sec.Addr() {
			t.Fatalf("served by %s, want the secondary while the primary is dead-timed", r.Server)
		}
	}
	if n := prim.Stats().Sessions - before; n != 0 {
		t.Fatalf("the dead-timed primary saw %d more sessions", n)
	}
	st, err := h.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Servers[0].State != "dead" || st.Servers[0].SingleConnect {
		t.Fatalf("primary status %+v, want dead and held down", st.Servers[0])
	}
}

// TestUserTimeoutDoesNotDeadTime: the server prompts and the user does not answer within UserTimeout.
// The session ends with ErrTimeout (and an ABORT to the server), and the server is not dead-timed: a slow
// user is the caller's side.
func TestUserTimeoutDoesNotDeadTime(t *testing.T) {
	srv := startServer(t, nil)
	h := newAgent(t, agent.Config{Servers: []agent.Server{server(srv.Addr())}, DeadTime: time.Minute,
		UserTimeout: 50 * time.Millisecond})
	_, err := h.Authenticate(ctxT(t), agent.AuthenRequest{User: "alice"}, func(ctx context.Context, _ agent.Prompt) ([]byte, error) {
		// The user answers only after the session gave up on them and aborted at the server.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for srv.Stats().Aborts == 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-tick.C:
			}
		}
		return []byte("alice-pw"), nil
	})
	if !errors.Is(err, tacplus.ErrTimeout) {
		t.Fatalf("error %v, want the user's timeout", err)
	}
	if v := h.metric(h.m().ServerDead.WithLabelValues(srv.Addr())); v != 0 {
		t.Fatalf("tacagent_server_dead = %v: a user's slowness dead-timed the server", v)
	}
	if r := h.login(t, "alice", "alice-pw"); r.Server != srv.Addr() {
		t.Fatalf("served by %s", r.Server)
	}
}
