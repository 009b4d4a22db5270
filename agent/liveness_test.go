package agent_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// Issue 12 points 4 and 5: dead-time reflects the server, not the caller; only a real TACACS+ answer
// proves a server alive.

// TestCallerDeadlineDoesNotDeadTime: a caller with a 100 ms deadline against a server whose own timeout is
// 5 s and which never answers gets ErrTimeout, and the server is not dead-timed for it.
func TestCallerDeadlineDoesNotDeadTime(t *testing.T) {
	srv := startServer(t, func(c *tacplustest.Config) { c.Faults = tacplustest.Faults{DropReplies: tacplustest.Always} })
	s := server(srv.Addr())
	s.Timeout = 5 * time.Second
	h := newAgent(t, agent.Config{Servers: []agent.Server{s}, DeadTime: time.Minute})
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := h.Authenticate(ctx, pap("alice", "alice-pw"), nil)
		cancel()
		if !errors.Is(err, tacplus.ErrTimeout) && !errors.Is(err, tacplus.ErrAborted) {
			t.Fatalf("error %v, want the caller's timeout", err)
		}
	}
	if v := h.metric(h.m().ServerDead.WithLabelValues(srv.Addr())); v != 0 {
		t.Fatalf("tacagent_server_dead = %v after callers gave up: a caller's deadline dead-timed the server", v)
	}
	st, err := h.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Servers[0].State == "dead" {
		t.Fatalf("status says %q after callers gave up", st.Servers[0].State)
	}
	if err := srv.SetFaults(tacplustest.Faults{}); err != nil {
		t.Fatal(err)
	}
	if r := h.login(t, "alice", "alice-pw"); r.Server != srv.Addr() {
		t.Fatalf("served by %s", r.Server)
	}
}

// TestBlackholedPrimary: a primary that accepts connections and never answers, and a healthy secondary.
// After the first detection, logins go to the secondary without waiting on the primary; the primary stays
// dead through several probes (its TCP accepts prove nothing) and comes back only once a probe is answered.
func TestBlackholedPrimary(t *testing.T) {
	prim := startServer(t, func(c *tacplustest.Config) { c.Faults = tacplustest.Faults{DropReplies: tacplustest.Always} })
	sec := startServer(t, nil)
	ps := server(prim.Addr())
	ps.Timeout = 300 * time.Millisecond
	const deadTime = 100 * time.Millisecond
	h := newAgent(t, agent.Config{Servers: []agent.Server{ps, server(sec.Addr())}, DeadTime: deadTime})
	dead := h.m().ServerDead.WithLabelValues(prim.Addr())

	// First detection: the primary's own timeout passes; the login fails over.
	if r := h.login(t, "alice", "alice-pw"); r.Server != sec.Addr() {
		t.Fatalf("first login served by %s, want the secondary", r.Server)
	}
	if v := h.metric(dead); v != 1 {
		t.Fatalf("primary not dead-timed after its own timeout (server_dead=%v)", v)
	}
	// Several dead-times, so several probes, reach the blackholed primary: none revives it.
	base := prim.Stats().Sessions
	eventually(t, waitLimit, "three probes at the blackholed primary", func() bool { return prim.Stats().Sessions >= base+3 })
	for range 20 {
		start := time.Now()
		r := h.login(t, "alice", "alice-pw")
		if r.Server != sec.Addr() {
			t.Fatalf("login served by %s while the primary is blackholed", r.Server)
		}
		// Not a timing claim: a login that waited on the primary would take its whole 300 ms timeout.
		if el := time.Since(start); el >= ps.Timeout {
			t.Logf("a login took %v (>= the primary's timeout): loaded machine or a wait on the primary", el)
		}
	}
	if v := h.metric(dead); v != 1 {
		t.Fatalf("the blackholed primary was revived without an answer (server_dead=%v)", v)
	}
	if fo := h.metric(h.m().Failovers.WithLabelValues(prim.Addr(), "authen")); fo != 1 {
		t.Fatalf("failovers from the primary = %v, want 1: later logins were sent to the dead primary", fo)
	}

	// The primary answers again: a probe revives it, and logins go back to it.
	if err := prim.SetFaults(tacplustest.Faults{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitLimit, "primary revived by a probe", func() bool { return h.metric(dead) == 0 })
	if r := h.login(t, "alice", "alice-pw"); r.Server != prim.Addr() {
		t.Fatalf("login after the revival served by %s, want the primary", r.Server)
	}
}

// TestAllServersBack: both servers go away and are dead-timed; once they are back, the first login started
// succeeds (it is tried on the dead-timed servers in order instead of failing untried).
func TestAllServersBack(t *testing.T) {
	a := startServer(t, nil)
	b := startServer(t, nil)
	addrA, addrB := a.Addr(), b.Addr()
	h := newAgent(t, agent.Config{Servers: []agent.Server{server(addrA), server(addrB)}, DeadTime: time.Hour,
		BackoffInitial: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	h.login(t, "alice", "alice-pw")
	a.Close()
	b.Close()
	_, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	if err == nil {
		t.Fatal("login succeeded with both servers gone")
	}
	eventually(t, waitLimit, "both servers dead-timed", func() bool {
		return h.metric(h.m().ServerDead.WithLabelValues(addrA)) == 1 && h.metric(h.m().ServerDead.WithLabelValues(addrB)) == 1
	})
	// Back on the same addresses. A one-hour dead-time means no probe revives them in this test.
	restart := func(addr string) {
		startServer(t, func(c *tacplustest.Config) { c.Addr = addr })
	}
	restart(addrA)
	restart(addrB)
	r, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	if err != nil {
		t.Fatalf("first login after both servers came back: %v", err)
	}
	if r.Server != addrA {
		t.Errorf("served by %s, want the first server %s (tried in order)", r.Server, addrA)
	}
	if v := h.metric(h.m().ServerDead.WithLabelValues(addrA)); v != 0 {
		t.Errorf("the answer did not revive %s (server_dead=%v)", addrA, v)
	}
}

// TestDesyncHoldDown (issue 12 point 1): a reply under a session_id nobody on the connection owns
// desynchronises the connection; from then on the server is used one connection per session (the hold-down),
// counted once in tacagent_single_connect_hold_downs_total even when it desynchronises again.
func TestDesyncHoldDown(t *testing.T) {
	srv := startServer(t, func(c *tacplustest.Config) { c.Faults = tacplustest.Faults{WrongSession: 1} })
	h := newAgent(t, agent.Config{Servers: []agent.Server{server(srv.Addr())}, DeadTime: time.Minute})
	holdDowns := h.m().HoldDowns.WithLabelValues(srv.Addr())
	// The misrouted reply: the login ends (typed error) or is retried under the retry-safety rules.
	if _, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil); err != nil && tacplus.ClassOf(err) == nil {
		t.Fatalf("untyped error %v", err)
	}
	eventually(t, waitLimit, "hold-down counted", func() bool { return h.metric(holdDowns) == 1 })
	before := srv.Stats().Connections
	const n = 5
	for range n {
		if r := h.login(t, "alice", "alice-pw"); r.Server != srv.Addr() {
			t.Fatalf("served by %s", r.Server)
		}
	}
	// One per login (sequential logins on a multiplexed connection would share one), plus at most the
	// primary connection's own background reconnect after its failure.
	if got := srv.Stats().Connections - before; got < n || got > n+1 {
		t.Fatalf("%d connections for %d logins during the hold-down, want one per session", got, n)
	}
	st, err := h.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Servers[0].SingleConnect {
		t.Error("status says single-connect during the hold-down")
	}
	// A second desync during the hold-down: not logged or counted again.
	if err := srv.SetFaults(tacplustest.Faults{WrongSession: 1}); err != nil {
		t.Fatal(err)
	}
	h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	if v := h.metric(holdDowns); v != 1 {
		t.Fatalf("hold_downs_total = %v after a second desync, want 1 (once per hold-down)", v)
	}
}

// TestMaxConnectionAge (issue 12 point 9): a long-lived connection older than max_connection_age takes no
// new sessions; a fresh one takes over, and the old one closes only once its sessions have ended (a slow
// login running across the retirement still gets its answer).
func TestMaxConnectionAge(t *testing.T) {
	srv := startServer(t, nil)
	s := server(srv.Addr())
	s.IdleTimeout = -1
	h := newAgent(t, agent.Config{Servers: []agent.Server{s}, MaxConnectionAge: 300 * time.Millisecond})
	h.login(t, "alice", "alice-pw")
	first := srv.Stats().Connections
	slow := make(chan error, 1)
	go func() {
		_, err := h.Authenticate(ctxT(t), pap("slow", "slow-pw"), nil)
		slow <- err
	}()
	eventually(t, waitLimit, "a fresh connection after the age limit", func() bool { return srv.Stats().Connections > first })
	for range 5 {
		h.login(t, "alice", "alice-pw")
	}
	if err := <-slow; err != nil {
		t.Fatalf("a login running across the retirement of its connection: %v", err)
	}
	eventually(t, waitLimit, "retired connections closed", func() bool { return srv.Stats().OpenConnections <= 2 })
}

// TestStatusCounts (issue 12 point 11): status shows the requests running and queued on a server's
// connections, and zero once they are answered.
func TestStatusCounts(t *testing.T) {
	srv := startServer(t, nil)
	s := server(srv.Addr())
	s.MaxInFlight = 1
	h := newAgent(t, agent.Config{Servers: []agent.Server{s}})
	h.login(t, "alice", "alice-pw") // negotiated: both slow logins below share the connection
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := h.Authenticate(ctxT(t), pap("slow", "slow-pw"), nil)
			done <- err
		}()
	}
	eventually(t, waitLimit, "one running and one queued in status", func() bool {
		st, err := h.Status(ctxT(t))
		return err == nil && st.Servers[0].InFlight == 1 && st.Servers[0].Queued == 1 && st.Pending == 2
	})
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("slow login: %v", err)
		}
	}
	st, err := h.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Servers[0].InFlight != 0 || st.Servers[0].Queued != 0 || st.Pending != 0 {
		t.Fatalf("after the answers: in flight %d, queued %d, pending %d", st.Servers[0].InFlight, st.Servers[0].Queued, st.Pending)
	}
}

// BenchmarkBlackholedPrimary: sequential PAP logins with a primary that accepts and never answers (1 s
// timeout, 50 ms dead-time, so probes run all the time) and a healthy secondary. Reports the p99 and max
// login latency after the first detection; before issue 12 a revival by TCP connect made a login pay the
// primary's whole timeout after every dead-time.
func BenchmarkBlackholedPrimary(b *testing.B) {
	prim := startServer(b, func(c *tacplustest.Config) { c.Faults = tacplustest.Faults{DropReplies: tacplustest.Always} })
	sec := startServer(b, nil)
	ps := server(prim.Addr())
	ps.Timeout = time.Second
	h := newAgent(b, agent.Config{Servers: []agent.Server{ps, server(sec.Addr())}, DeadTime: 50 * time.Millisecond})
	h.login(b, "alice", "alice-pw") // the first detection
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := h.Authenticate(context.Background(), pap("alice", "alice-pw"), nil); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}
