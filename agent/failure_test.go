package agent_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/actors/supervisor"
	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// TestIdleCloseByServer: the server closes idle connections (tacquito does after 15 s); the agent notices,
// treats it as a normal close (no restart, no failure, server not dead) and the next login succeeds.
func TestIdleCloseByServer(t *testing.T) {
	// The server's idle timer also runs between the agent's connect and its first packet: it must be long
	// enough that a loaded machine never spends it there (which is the idle-close race of
	// TestCloseAsRequestGoesOut, counted as a loss), yet short for a test.
	srv := startServer(t, func(c *tacplustest.Config) { c.IdleTimeout = time.Second })
	s := server(srv.Addr())
	s.IdleTimeout = -1 // the agent never closes first: the server always does
	h := newAgent(t, agent.Config{Servers: []agent.Server{s}})
	m := h.m()
	for round := 1; round <= 3; round++ {
		h.login(t, "alice", "alice-pw")
		eventually(t, waitLimit, "server closed the idle connection", func() bool { return srv.Stats().IdleClosed >= int64(round) })
		eventually(t, waitLimit, "agent saw the close", func() bool {
			return h.metric(m.ConnCloses.WithLabelValues(srv.Addr(), "eof")) >= float64(round)
		})
	}
	h.login(t, "alice", "alice-pw")
	for name, v := range map[string]float64{
		"restarts": h.metric(m.ConnRestarts.WithLabelValues(srv.Addr())),
		"failures": h.metric(m.ConnFailures.WithLabelValues(srv.Addr())),
		"dead":     h.metric(m.ServerDead.WithLabelValues(srv.Addr())),
		"lost":     h.metric(m.ConnectionLost.WithLabelValues(srv.Addr())),
	} {
		if v != 0 {
			t.Errorf("%s = %v after idle closes, want 0", name, v)
		}
	}
	if st := srv.Stats(); st.Connections != 4 {
		t.Errorf("%d connections, want 4 (one per login, each closed idle)", st.Connections)
	}
}

// TestCloseAsRequestGoesOut: the server closes the connection instead of answering (what a server closing an
// idle connection just as a request goes out looks like). No reply was seen, so the request is retried once
// on the same server, on a fresh connection, and the login succeeds.
func TestCloseAsRequestGoesOut(t *testing.T) {
	srv := startServer(t, func(c *tacplustest.Config) { c.Faults = tacplustest.Faults{CloseMidSession: 1} })
	h := newAgent(t, agent.Config{Servers: []agent.Server{server(srv.Addr())}})
	r := h.login(t, "alice", "alice-pw")
	if r.Server != srv.Addr() {
		t.Errorf("served by %s", r.Server)
	}
	st := srv.Stats()
	if st.Faults.CloseMidSession != 1 || st.Connections != 2 || st.PacketsOut != 1 {
		t.Errorf("server stats %+v: want one close, two connections, one reply", st)
	}
	if v := h.metric(h.m().ServerDead.WithLabelValues(srv.Addr())); v != 0 {
		t.Errorf("server marked dead by a lost connection")
	}
	eventually(t, waitLimit, "connection actor restarted", func() bool {
		return h.metric(h.m().ConnRestarts.WithLabelValues(srv.Addr())) == 1
	})
	if v := h.metric(h.m().ConnectionLost.WithLabelValues(srv.Addr())); v != 1 {
		t.Errorf("connection_lost_broadcasts_total = %v, want 1", v)
	}
}

// TestServerKilledMidSession: sessions are held in flight by the primary (its replies are delayed) when it
// dies. Every session ends within killBound: here they were all safe to retry (no reply seen), so each
// succeeds on the secondary; a session that had shown a prompt ends with ErrConnectionLost. The primary's
// connection actor is restarted, the server is marked dead by the failed reconnect, and every goroutine ends.
func TestServerKilledMidSession(t *testing.T) {
	// Half the primary's 2 s reply delay: a session that waited for the dead primary's reply (or for a
	// timeout) fails; the figure itself (about 1-20 ms idle, 100-170 ms under -race on a loaded 2-core
	// machine) is logged, not asserted.
	const killBound = time.Second
	const n = 50
	for _, tc := range []struct {
		name string
		kill func(*tacplustest.Server)
		// stays up: the server only cut its connections (a restart, a middlebox), so the retry on the
		// same server reconnects and succeeds there.
		staysUp bool
	}{
		{name: "server closed", kill: func(s *tacplustest.Server) { s.Close() }},
		{name: "connections cut", staysUp: true, kill: func(s *tacplustest.Server) {
			s.SetUser("slow", tacplustest.User{Password: "slow-pw"}) // as if restarted, now fast
			s.CloseConnections()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := goleak.IgnoreCurrent()
			// "slow" is held back by the primary (Delay 2 s, below the 5 s reply timeout), not by the secondary.
			primary := startServer(t, nil)
			secondary := startServer(t, func(c *tacplustest.Config) { c.Users["slow"] = tacplustest.User{Password: "slow-pw"} })
			h := newAgent(t, agent.Config{Servers: []agent.Server{server(primary.Addr()), server(secondary.Addr())}})

			type result struct {
				err  error
				srv  string
				done time.Time
			}
			results := make([]result, n+1)
			var wg sync.WaitGroup
			// One ASCII login waiting for the user's password when the server dies: it showed prompts, so it
			// cannot be retried. Its conversation returns once the server is gone.
			prompted, gone := make(chan struct{}), make(chan struct{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := h.Authenticate(ctxT(t), agent.AuthenRequest{}, func(ctx context.Context, p agent.Prompt) ([]byte, error) {
					if p.Status == tacplus.AuthenStatusGetUser {
						return []byte("alice"), nil
					}
					close(prompted)
					<-gone
					return []byte("alice-pw"), nil
				})
				results[n] = result{err: err, done: time.Now()}
			}()
			<-prompted // the single-connect negotiation is done: the PAP sessions go out at once
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := h.Authenticate(ctxT(t), pap("slow", "slow-pw"), nil)
					results[i] = result{err: err, done: time.Now()}
					if r != nil {
						results[i].srv = r.Server
					}
				}()
			}

			eventually(t, waitLimit, "all sessions at the primary", func() bool { return primary.Stats().Sessions == n+1 })
			killed := time.Now()
			tc.kill(primary)
			close(gone)
			wg.Wait()
			var latest time.Duration
			for i, r := range results {
				latest = max(latest, r.done.Sub(killed))
				if late := r.done.Sub(killed); late > killBound {
					t.Errorf("session %d ended %v after the kill, bound %v", i, late, killBound)
				}
				switch {
				case i == n:
					wantClass(t, r.err, tacplus.ErrConnectionLost)
				case r.err == nil && r.srv == secondary.Addr() && !tc.staysUp:
				case r.err == nil && tc.staysUp:
				default:
					t.Errorf("session %d: server %q error %v, want success on the secondary", i, r.srv, r.err)
				}
			}
			t.Logf("every session ended within %v of the kill", latest)
			m := h.m()
			eventually(t, waitLimit, "primary restarted", func() bool { return h.metric(m.ConnRestarts.WithLabelValues(primary.Addr())) >= 1 })
			wantDead := 1.0
			if tc.staysUp {
				wantDead = 0
			}
			eventually(t, waitLimit, "primary dead or alive", func() bool {
				return h.metric(m.ServerDead.WithLabelValues(primary.Addr())) == wantDead
			})
			if v := h.metric(m.ConnectionLost.WithLabelValues(primary.Addr())); v != n+1 {
				t.Errorf("connection_lost_broadcasts_total = %v, want %d", v, n+1)
			}
			h.Close(ctxT(t))
			primary.Close()
			secondary.Close()
			goleak.VerifyNone(t, base)
		})
	}
}

// TestFailoverDeadTime: the primary accepts connections but never answers. The first login waits for its
// timeout and fails over; later logins go straight to the secondary without touching the primary (no new
// connection, no new session there) until dead-time expires.
func TestFailoverDeadTime(t *testing.T) {
	// Long enough that a login that waited for the dead primary cannot pass for one that did not, on any
	// machine; the primary's session count says the same without a clock.
	const timeout = 2 * time.Second
	primary := startServer(t, func(c *tacplustest.Config) { c.Faults.DropReplies = tacplustest.Always })
	secondary := startServer(t, nil)
	p := server(primary.Addr())
	p.Timeout = timeout
	h := newAgent(t, agent.Config{Servers: []agent.Server{p, server(secondary.Addr())}, DeadTime: time.Minute})
	eventually(t, waitLimit, "primary connected", func() bool { return primary.Stats().Connections == 1 })

	start := time.Now()
	r := h.login(t, "alice", "alice-pw")
	first := time.Since(start)
	if r.Server != secondary.Addr() || first < timeout {
		t.Fatalf("first login: server %s after %v, want the secondary after at least %v", r.Server, first, timeout)
	}
	var worst time.Duration
	for range 20 {
		start := time.Now()
		r := h.login(t, "alice", "alice-pw")
		worst = max(worst, time.Since(start))
		if r.Server != secondary.Addr() {
			t.Fatalf("served by %s during dead-time", r.Server)
		}
	}
	if worst >= timeout {
		t.Errorf("slowest login during dead-time took %v, a server timeout; the first took %v", worst, first)
	}
	st := primary.Stats()
	if st.Connections != 1 || st.Sessions != 1 {
		t.Errorf("primary saw %d connections and %d sessions, want 1 and 1: logins went to a dead server", st.Connections, st.Sessions)
	}
	if v := h.metric(h.m().ServerDead.WithLabelValues(primary.Addr())); v != 1 {
		t.Errorf("server_dead = %v", v)
	}
	if v := h.metric(h.m().Failovers.WithLabelValues(primary.Addr(), "authen")); v != 1 {
		t.Errorf("failovers_total = %v, want 1", v)
	}
	t.Logf("first login %v (timeout %v), slowest of the next 20 %v", first, timeout, worst)
}

// TestFailoverPrimaryDown: nothing listens at the primary's address. Logins are served by the secondary,
// and every connection attempt to the primary is a background probe (a connection actor restart), none is
// made for a login.
func TestFailoverPrimaryDown(t *testing.T) {
	secondary := startServer(t, nil)
	dead := deadAddr(t)
	var dials countingDial
	p := server(dead)
	p.Dial = dials.dial
	h := newAgent(t, agent.Config{Servers: []agent.Server{p, server(secondary.Addr())}, DeadTime: time.Minute,
		BackoffInitial: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	restarts := h.m().ConnRestarts.WithLabelValues(dead)
	for range 30 {
		if r := h.login(t, "alice", "alice-pw"); r.Server != secondary.Addr() {
			t.Fatalf("served by %s", r.Server)
		}
		// Every dial is the first connect or a restart's probe: a restart is counted before its dial.
		if d, rs := dials.n.Load(), int64(h.metric(restarts)); d > rs+1 {
			t.Fatalf("%d dials for %d restarts: a login dialled the dead server", d, rs)
		}
	}
	eventually(t, waitLimit, "background probes", func() bool { return h.metric(restarts) >= 3 })
}

// TestKeyMismatch: the server has another key. The login fails with ErrBadSecret, the bad packet is
// counted, and further logins during dead-time do not reconnect (no retry storm); the error still says why.
func TestKeyMismatch(t *testing.T) {
	srv := startServer(t, func(c *tacplustest.Config) { c.Key = []byte("another-key") })
	h := newAgent(t, agent.Config{Servers: []agent.Server{server(srv.Addr())}, DeadTime: time.Minute})
	_, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	wantClass(t, err, tacplus.ErrBadSecret)
	for range 20 {
		_, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
		if !errors.Is(err, tacplus.ErrBadSecret) && !errors.Is(err, tacplus.ErrUnreachable) {
			t.Fatalf("error %v, want bad secret or unreachable (dead-timed)", err)
		}
	}
	m := h.m()
	if v := h.metric(m.BadPackets.WithLabelValues(srv.Addr(), "bad_secret")); v < 1 {
		t.Errorf("bad_packets_total{reason=bad_secret} = %v", v)
	}
	if st := srv.Stats(); st.Connections > 1 || st.Sessions > 1 {
		t.Errorf("server saw %d connections and %d sessions for 21 logins: retry storm", st.Connections, st.Sessions)
	}
	_, err = h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	if err == nil || !containsAll(err.Error(), "dead-timed", "bad shared secret") {
		t.Errorf("error during dead-time %q does not say why", err)
	}
	eventually(t, waitLimit, "draining connection closed", func() bool { return srv.Stats().OpenConnections == 0 })
}

// TestRestartBackoff: the connection actor of a dead server is restarted (each restart dials once, the
// background probe) after delays that double from BackoffInitial and stop growing at BackoffMax. A timer
// never fires early, so each gap is at least its delay; the cap bounds the gaps from above (with slack for
// a loaded machine).
func TestRestartBackoff(t *testing.T) {
	const initial, capped, slack = 10 * time.Millisecond, 40 * time.Millisecond, 250 * time.Millisecond
	dead := deadAddr(t)
	var mu sync.Mutex
	var dials []time.Time
	s := server(dead)
	s.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
		mu.Lock()
		dials = append(dials, time.Now())
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	h := newAgent(t, agent.Config{Servers: []agent.Server{s}, BackoffInitial: initial, BackoffMax: capped})
	eventually(t, waitLimit, "seven probes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(dials) >= 7
	})
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < 7; i++ {
		gap, want := dials[i].Sub(dials[i-1]), supervisor.Backoff(i, initial, capped)
		if gap < want || gap > capped+slack {
			t.Errorf("gap before probe %d: %v, want at least %v and at most %v", i, gap, want, capped+slack)
		}
	}
	if v := h.metric(h.m().ConnRestarts.WithLabelValues(dead)); v < 6 {
		t.Errorf("restarts = %v", v)
	}
}

// TestRestartBackoffResets: a good connect resets the backoff. After the server came back for one probe
// and went again, the next restart comes after BackoffInitial, not after the grown delay.
func TestRestartBackoffResets(t *testing.T) {
	const initial, capped = 10 * time.Millisecond, 2 * time.Second
	dead, release := heldDeadAddr(t)
	var mu sync.Mutex
	var dials []time.Time
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(dials) }
	s := server(dead)
	s.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
		mu.Lock()
		dials = append(dials, time.Now())
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	s.IdleTimeout = -1
	// The only server is dead-timed, so the login after the comeback is still tried on it (a request never
	// fails untried) and dials; the long dead-time keeps background probes (which dial too) out of the count.
	h := newAgent(t, agent.Config{Servers: []agent.Server{s}, BackoffInitial: initial, BackoffMax: capped, DeadTime: time.Minute})
	eventually(t, waitLimit, "five failed probes", func() bool { return count() >= 5 }) // next delay: 160 ms
	release()
	ln, err := net.Listen("tcp", dead) // the server is back
	if err != nil {
		t.Fatalf("rebind %s: %v", dead, err)
	}
	conns := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			conns <- c
		}
		close(conns)
	}()
	c := <-conns
	ln.Close()
	eventually(t, waitLimit, "agent connected", func() bool { return h.metric(h.m().ConnOpens.WithLabelValues(dead)) == 1 })
	before := count()
	c.Close() // the server goes away again; the next login's connect fails, then the restarts resume
	h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	eventually(t, waitLimit, "probing again", func() bool { return count() >= before+2 })
	mu.Lock()
	defer mu.Unlock()
	if gap := dials[before+1].Sub(dials[before]); gap < initial || gap >= 160*time.Millisecond {
		t.Errorf("first restart after the good connect came %v after the failure, want about %v", gap, initial)
	}
}

// TestAllDeadFailsFast: every server is down and dead-timed, and their primary connections wait out a long
// restart backoff. A login then tries them anyway (nothing better is alive), but on connections of its
// own: it fails at once with ErrUnreachable instead of waiting for the backoff in the primary's mailbox.
func TestAllDeadFailsFast(t *testing.T) {
	const backoff = 20 * time.Second // far longer than any login may wait
	h := newAgent(t, agent.Config{Servers: []agent.Server{server(deadAddr(t)), server(deadAddr(t))},
		DeadTime: time.Millisecond, BackoffInitial: backoff, BackoffMax: backoff})
	_, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	wantClass(t, err, tacplus.ErrUnreachable) // both connects refused: both primaries now wait 20 s
	for range 5 {
		start := time.Now()
		_, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
		wantClass(t, err, tacplus.ErrUnreachable)
		if took := time.Since(start); took > backoff/2 {
			t.Fatalf("a login with every server down took %s: it waited for a restart backoff", took)
		}
	}
}

// TestLoginsAtTheFailureFailFast: many logins race the failure of the primary connections (every server
// down, a 20 s restart backoff). A login the supervisor sent to a primary in the instant after its connect
// failed sits in that actor's suspended mailbox; the supervisor withdraws it when it handles the failure
// (messages.StartSession.Withdraw) and sends it on a connection of its own, so that no login waits for
// the backoff. Without the withdrawal, some of these logins waited the whole 20 s.
func TestLoginsAtTheFailureFailFast(t *testing.T) {
	const backoff = 20 * time.Second // far longer than any login may wait
	const callers = 64
	for round := range 3 {
		h := newAgent(t, agent.Config{Servers: []agent.Server{server(deadAddr(t)), server(deadAddr(t))},
			DeadTime: time.Millisecond, BackoffInitial: backoff, BackoffMax: backoff})
		start := time.Now()
		errs := make(chan error, callers)
		for range callers {
			go func() {
				_, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
				errs <- err
			}()
		}
		for range callers {
			wantClass(t, <-errs, tacplus.ErrUnreachable)
		}
		if took := time.Since(start); took > backoff/2 {
			t.Fatalf("round %d: %d logins with every server down took %s: some waited for a restart backoff", round, callers, took)
		}
	}
}
