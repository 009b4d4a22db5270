package agent_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// TestProbeRevivesTacquito (issue 12 point 5): the dead-server probe (ASCII START without a user, the
// server's GETUSER, then a CONTINUE with ABORT) revives a real, independent server: tacquito. The server
// is unreachable at first (the dialer refuses), is dead-timed, comes back, and is revived by the probe
// alone: no login is made until the dead gauge is 0. The probe leaves no trace of a misbehaving server:
// no hold-down, no bad packet, and the next login is served by it.
func TestProbeRevivesTacquito(t *testing.T) {
	tqs := startTacquito(t, testKey)
	var down atomic.Bool
	down.Store(true)
	s := server(tqs.addr)
	s.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
		if down.Load() {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	h := newAgent(t, agent.Config{Servers: []agent.Server{s}, DeadTime: 200 * time.Millisecond})
	dead := h.m().ServerDead.WithLabelValues(tqs.addr)
	_, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	wantClass(t, err, tacplus.ErrUnreachable)
	eventually(t, waitLimit, "server dead-timed", func() bool { return h.metric(dead) == 1 })

	down.Store(false)
	eventually(t, waitLimit, "server revived by the probe", func() bool { return h.metric(dead) == 0 })
	if n := tqs.ln.Accepted(); n < 1 {
		t.Fatalf("revived with %d connections at tacquito: not by a probe", n)
	}
	r := h.login(t, "alice", "alice-pw")
	if r.Server != tqs.addr {
		t.Fatalf("served by %s", r.Server)
	}
	if n := testutil.CollectAndCount(h.m().HoldDowns); n != 0 {
		t.Errorf("%d hold-down series after probing tacquito", n)
	}
	if n := testutil.CollectAndCount(h.m().BadPackets); n != 0 {
		t.Errorf("%d bad-packet series after probing tacquito", n)
	}
	if v := h.metric(dead); v != 0 {
		t.Errorf("server dead again after the probe and a login")
	}
}

// TestTacquitoAbortKeepsConnection: a caller gives up at a prompt, the agent sends a CONTINUE with ABORT,
// and tacquito answers it (FAIL "ending per client request"). That answer is dropped: the shared
// connection is not desynchronised, the server is not held down or dead-timed, and the next login goes on
// the same connection.
func TestTacquitoAbortKeepsConnection(t *testing.T) {
	tqs := startTacquito(t, testKey)
	s := server(tqs.addr)
	s.IdleTimeout = -1
	h := newAgent(t, agent.Config{Servers: []agent.Server{s}, DeadTime: time.Minute})
	h.login(t, "alice", "alice-pw") // single-connect agreed
	_, err := h.Authenticate(ctxT(t), agent.AuthenRequest{}, func(context.Context, agent.Prompt) ([]byte, error) {
		return nil, errors.New("the user pressed ^C")
	})
	wantClass(t, err, tacplus.ErrAborted)
	for range 3 {
		h.login(t, "alice", "alice-pw")
	}
	if n := tqs.ln.Accepted(); n != 1 {
		t.Errorf("%d connections at tacquito, want the one shared connection", n)
	}
	if n := testutil.CollectAndCount(h.m().HoldDowns); n != 0 {
		t.Errorf("%d hold-down series after an aborted login", n)
	}
	if n := testutil.CollectAndCount(h.m().BadPackets); n != 0 {
		t.Errorf("%d bad-packet series after an aborted login", n)
	}
	if v := h.metric(h.m().ServerDead.WithLabelValues(tqs.addr)); v != 0 {
		t.Errorf("server dead after an aborted login")
	}
}

// TestProbeRevivedByError: any well-formed reply under our key proves the server alive, not only GETUSER: a
// server that answers the probe's START with ERROR is revived (and the probe's connection is not counted
// as a failure).
func TestProbeRevivedByError(t *testing.T) {
	srv := startServer(t, func(c *tacplustest.Config) { c.Faults = tacplustest.Faults{ErrorReplies: tacplustest.Always} })
	var down atomic.Bool
	down.Store(true)
	s := server(srv.Addr())
	s.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
		if down.Load() {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	h := newAgent(t, agent.Config{Servers: []agent.Server{s}, DeadTime: 200 * time.Millisecond})
	dead := h.m().ServerDead.WithLabelValues(srv.Addr())
	eventually(t, waitLimit, "server dead-timed", func() bool { return h.metric(dead) == 1 })
	down.Store(false)
	eventually(t, waitLimit, "server revived by the probe's ERROR", func() bool { return h.metric(dead) == 0 })
	if st := srv.Stats(); st.Sessions < 1 || st.Faults.ErrorReplies < 1 {
		t.Fatalf("server stats %+v: the probe did not reach it", st)
	}
}
