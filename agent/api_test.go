package agent_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// cancelBound is how soon a cancelled request must return.
const cancelBound = 500 * time.Millisecond

// TestCancelInConversation: the caller's context ends while the server waits for the user's password. The
// session sends a CONTINUE with the ABORT flag (RFC 8907 section 5.4.3), which the server records, even
// though the conversation function itself has not returned yet; the caller gets ErrAborted.
func TestCancelInConversation(t *testing.T) {
	srv := startServer(t, nil)
	h := newAgent(t, agent.Config{Servers: []agent.Server{server(srv.Addr())}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := h.Authenticate(ctx, agent.AuthenRequest{}, func(_ context.Context, p agent.Prompt) ([]byte, error) {
			if p.Status == tacplus.AuthenStatusGetUser {
				return []byte("alice"), nil
			}
			cancel()
			<-release // a conversation stuck on a terminal: the abort must not wait for it
			return nil, errors.New("terminal closed")
		})
		errc <- err
	}()
	eventually(t, waitLimit, "server saw the ABORT", func() bool { return srv.Stats().Aborts == 1 })
	close(release)
	wantClass(t, <-errc, tacplus.ErrAborted)
}

// TestCancelWhileServerHoldsTurn: cancelled while the server is working on the START. No ABORT can be sent
// before its reply (section 4.1 alternation), so the session just ends; the caller returns at once.
func TestCancelWhileServerHoldsTurn(t *testing.T) {
	srv := startServer(t, nil)
	h := newAgent(t, agent.Config{Servers: []agent.Server{server(srv.Addr())}})
	h.login(t, "alice", "alice-pw") // negotiation done
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := h.Authenticate(ctx, pap("slow", "slow-pw"), nil)
		errc <- err
	}()
	eventually(t, waitLimit, "session at the server", func() bool { return srv.Stats().Sessions == 2 })
	start := time.Now()
	cancel()
	err := <-errc
	if d := time.Since(start); d > cancelBound {
		t.Errorf("returned %v after cancel", d)
	}
	wantClass(t, err, tacplus.ErrAborted)
	if st := srv.Stats(); st.Aborts != 0 {
		t.Errorf("server saw %d aborts", st.Aborts)
	}
	h.login(t, "alice", "alice-pw") // the late reply for the cancelled session is dropped harmlessly
}

// TestCancelQueued: a request waiting behind the per-connection limit is cancelled before it was sent; the
// server never sees it.
func TestCancelQueued(t *testing.T) {
	srv := startServer(t, nil)
	s := server(srv.Addr())
	s.MaxInFlight = 1
	h := newAgent(t, agent.Config{Servers: []agent.Server{s}})
	h.login(t, "alice", "alice-pw")
	slow := make(chan error, 1)
	go func() {
		_, err := h.Authenticate(ctxT(t), pap("slow", "slow-pw"), nil)
		slow <- err
	}()
	eventually(t, waitLimit, "slow session at the server", func() bool { return srv.Stats().Sessions == 2 })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := h.Authenticate(ctx, pap("alice", "alice-pw"), nil)
		errc <- err
	}()
	eventually(t, waitLimit, "request queued", func() bool { return h.metric(h.m().SessionsQueued.WithLabelValues(srv.Addr())) == 1 })
	cancel()
	wantClass(t, <-errc, tacplus.ErrAborted)
	if err := <-slow; err != nil {
		t.Fatalf("slow login: %v", err)
	}
	if st := srv.Stats(); st.Sessions != 2 {
		t.Errorf("server saw %d sessions, want 2: the cancelled request went out", st.Sessions)
	}
}

// TestMaxInFlightQueues: beyond the per-connection limit requests wait (never dropped) and all succeed; the
// server never has more than the limit of sessions open on the connection.
func TestMaxInFlightQueues(t *testing.T) {
	const limit, n = 4, 40
	srv := startServer(t, func(c *tacplustest.Config) {
		c.Users["alice"] = tacplustest.User{Password: "alice-pw", Delay: 5 * time.Millisecond}
	})
	s := server(srv.Addr())
	s.MaxInFlight = limit
	h := newAgent(t, agent.Config{Servers: []agent.Server{s}})
	// One login first: single-connect is then negotiated (and remembered), so that on a loaded machine the
	// requests below do not wait out NegotiationWait behind the first and take connections of their own.
	h.login(t, "alice", "alice-pw")
	stop := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		var most int64
		tick := time.NewTicker(100 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peak <- most
				return
			case <-tick.C:
			}
			st := srv.Stats() // Sessions is read before the passes: the difference never overestimates
			most = max(most, st.Sessions-st.AuthenPass)
		}
	}()
	var errs firstErrs
	runParallel(n, func(i int) {
		if _, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil); err != nil {
			errs.add("login %d: %v", i, err)
		}
	})
	close(stop)
	errs.check(t)
	if p := <-peak; p > limit {
		t.Errorf("server had %d sessions open at once, limit %d", p, limit)
	}
	if st := srv.Stats(); st.AuthenPass != n+1 || st.Connections != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestClose: Close stops new requests, lets requests in flight finish until the deadline, answers the ones
// still running at the deadline with a typed error, and leaves no goroutine and no socket behind.
func TestClose(t *testing.T) {
	t.Run("drains", func(t *testing.T) {
		base := goleak.IgnoreCurrent()
		srv := startServer(t, func(c *tacplustest.Config) {
			c.Users["alice"] = tacplustest.User{Password: "alice-pw", Delay: 50 * time.Millisecond}
		})
		a, err := agent.New(agent.Config{Servers: []agent.Server{server(srv.Addr())}})
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 10)
		for range 10 {
			go func() {
				_, err := a.Authenticate(context.Background(), pap("alice", "alice-pw"), nil)
				errc <- err
			}()
		}
		eventually(t, waitLimit, "sessions at the server", func() bool { return srv.Stats().Sessions == 10 })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if n, err := a.Close(ctx); n != 0 || err != nil {
			t.Errorf("Close = %d, %v", n, err)
		}
		for range 10 {
			if err := <-errc; err != nil {
				t.Errorf("in-flight login: %v", err)
			}
		}
		_, err = a.Authenticate(context.Background(), pap("alice", "alice-pw"), nil)
		wantClass(t, err, tacplus.ErrAborted)
		eventually(t, waitLimit, "socket closed", func() bool { return srv.Stats().OpenConnections == 0 })
		srv.Close()
		goleak.VerifyNone(t, base)
	})
	t.Run("deadline", func(t *testing.T) {
		base := goleak.IgnoreCurrent()
		srv := startServer(t, nil)
		a, err := agent.New(agent.Config{Servers: []agent.Server{server(srv.Addr())}})
		if err != nil {
			t.Fatal(err)
		}
		// A fast login first settles single-connect, so that the slow ones all go out at once.
		if _, err := a.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 10)
		for range 10 {
			go func() {
				_, err := a.Authenticate(context.Background(), pap("slow", "slow-pw"), nil)
				errc <- err
			}()
		}
		eventually(t, waitLimit, "sessions at the server", func() bool { return srv.Stats().Sessions == 11 })
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if n, err := a.Close(ctx); n != 10 || err != nil {
			t.Errorf("Close = %d, %v; want 10 abandoned", n, err)
		}
		for range 10 {
			err := <-errc
			wantClass(t, err, tacplus.ErrAborted)
			if !strings.Contains(err.Error(), "agent closed") {
				t.Errorf("error %v", err)
			}
		}
		eventually(t, waitLimit, "socket closed", func() bool { return srv.Stats().OpenConnections == 0 })
		srv.Close()
		goleak.VerifyNone(t, base)
	})
}

// TestAddressFamilies: IPv4 and IPv6 servers, with and without a source address.
func TestAddressFamilies(t *testing.T) {
	for _, tc := range []struct{ listen, source string }{
		{"127.0.0.1:0", ""},
		{"127.0.0.1:0", "127.0.0.1"},
		{"[::1]:0", ""},
		{"[::1]:0", "::1"},
	} {
		t.Run(tc.listen+" from "+tc.source, func(t *testing.T) {
			srv := startServer(t, func(c *tacplustest.Config) { c.Addr = tc.listen })
			s := server(srv.Addr())
			s.SourceAddr = tc.source
			h := newAgent(t, agent.Config{Servers: []agent.Server{s}})
			h.login(t, "alice", "alice-pw")
			if host, _, _ := net.SplitHostPort(srv.Addr()); tc.source != "" && host != tc.source {
				t.Fatalf("listening on %s", srv.Addr())
			}
		})
	}
}

// TestErrorsCarryContext: every error names the server, the session and the FSM state, and never holds the
// password.
func TestErrorsCarryContext(t *testing.T) {
	srv := startServer(t, nil)
	h := newAgent(t, agent.Config{Servers: []agent.Server{server(srv.Addr())}})
	_, err := h.Authenticate(ctxT(t), pap("alice", "not-the-password"), nil)
	wantClass(t, err, tacplus.ErrAuthenticationFailed)
	var te *tacplus.Error
	errors.As(err, &te)
	if te.Server != srv.Addr() || te.SessionID == 0 || te.State == "" {
		t.Errorf("error %+v lacks server, session or state", te)
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Errorf("error shows the password: %v", err)
	}
}
