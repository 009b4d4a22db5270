package agent_test

import (
	"testing"
	"time"

	"github.com/tacagent/tacagent/agent"
)

// TestNegotiationRemembered (issue 12 point 2): the server agreed to single-connect once; the fresh
// primary that replaces an aged one uses the remembered agreement: the requests behind its slow first
// session go out at once on the same socket (one connection, nothing handed back as refused, no
// connection of their own after NegotiationWait).
//
// The age limit (5 s, at least 4.5 s with jitter) is far longer than the slow session (2 s), so the
// replacement primary is not itself retired while the test counts connections.
func TestNegotiationRemembered(t *testing.T) {
	srv := startServer(t, nil)
	s := server(srv.Addr())
	s.IdleTimeout = -1
	h := newAgent(t, agent.Config{Servers: []agent.Server{s}, MaxConnectionAge: 5 * time.Second})
	h.login(t, "alice", "alice-pw") // negotiated: agreed
	eventually(t, waitLimit, "the aged connection replaced", func() bool { return srv.Stats().Connections == 2 })
	slow := make(chan error, 1)
	go func() {
		_, err := h.Authenticate(ctxT(t), pap("slow", "slow-pw"), nil)
		slow <- err
	}()
	eventually(t, waitLimit, "the slow session at the server", func() bool { return srv.Stats().Sessions >= 2 })
	for range 5 {
		h.login(t, "alice", "alice-pw")
	}
	if n := srv.Stats().Connections; n != 2 {
		t.Fatalf("%d connections: the logins behind the slow first session of the new connection did not share it", n)
	}
	if err := <-slow; err != nil {
		t.Fatalf("slow login: %v", err)
	}
	st := srv.Stats()
	if st.SingleConnectAgreed != 2 || st.SingleConnectRefused != 0 {
		t.Errorf("server saw %d agreed, %d refused negotiations; want 2 and 0", st.SingleConnectAgreed, st.SingleConnectRefused)
	}
	if r, err := h.Status(ctxT(t)); err != nil || len(r.Servers) != 1 || !r.Servers[0].SingleConnect {
		t.Errorf("status %+v, %v: the agreement is no longer remembered", r, err)
	}
}
