package chaos

// The smallest reproductions of the bugs the scenarios found outside this package (docs/chaos.md, "Bugs
// found"). Each runs in-process against the project's test server in a few seconds at most. All four were
// fixed: the metric ones in d470399 (in flight counted by the sessions; gauges written by the primary
// connection only), the other two in f491623 (a negotiation that times out hands its queue on; a server
// that cuts fresh connections is dead-timed). The reproductions stay as regression tests.

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// reproServer starts an in-process test server with alice, whose replies are held back by delay.
func reproServer(t *testing.T, single bool, delay time.Duration) *tacplustest.Server {
	t.Helper()
	s, err := tacplustest.Start(tacplustest.Config{Key: []byte(chaosKey), SingleConnect: single,
		Users: map[string]tacplustest.User{user: {Password: password, Delay: delay}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// reproAgent starts an agent that is closed when the test ends.
func reproAgent(t *testing.T, cfg agent.Config, opts ...agent.Option) *agent.Agent {
	t.Helper()
	a, err := agent.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopLimit)
		defer cancel()
		a.Close(ctx)
	})
	return a
}

// TestReproInFlightGaugeAfterClose (actors/connection, agent): an agent closed while sessions end leaves
// tacagent_sessions_in_flight above zero. The daemon shares its collectors between the agents a reload
// replaces, so each reload under load can leave the gauge one higher for good (TestReloadUnderLoad).
// Likely cause: Close stops the connection actors (a system message, which overtakes queued user
// messages) while a session's SessionEnded, sent just after its Outcome, is still queued; forget() never
// runs, and InFlight is never decremented.
func TestReproInFlightGaugeAfterClose(t *testing.T) {
	srv := reproServer(t, true, 5*time.Millisecond)
	const rounds, perRound = 50, 40
	leaked := 0
	for round := range rounds {
		reg := prometheus.NewRegistry()
		a, err := agent.New(agent.Config{Servers: []agent.Server{{Addr: srv.Addr(), Key: []byte(chaosKey), Timeout: serverTimeout}}},
			agent.WithRegisterer(reg))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range perRound {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), reqDeadline)
				defer cancel()
				_, _ = a.Authenticate(ctx, agent.AuthenRequest{User: user, Type: tacplus.AuthenTypePAP, Password: []byte(password)}, nil)
			}()
		}
		// Close while the sessions run: the drain lets them finish, then the actors stop.
		ctx, cancel := context.WithTimeout(context.Background(), stopLimit)
		if _, err := a.Close(ctx); err != nil {
			t.Errorf("round %d: Close: %v", round, err)
		}
		cancel()
		wg.Wait()
		s, err := GatherSamples(reg)
		if err != nil {
			t.Fatal(err)
		}
		st := s.Sum("tacagent_sessions_started_total", nil)
		fi := s.Sum("tacagent_sessions_finished_total", nil)
		if in := s.Sum("tacagent_sessions_in_flight", nil); in != 0 {
			leaked++
			t.Logf("round %d: %v sessions started, %v finished, tacagent_sessions_in_flight = %v after Close", round, st, fi, in)
		}
	}
	if leaked > 0 {
		t.Errorf("in %d of %d rounds the in-flight gauge stayed above zero after Close", leaked, rounds)
	}
}

// TestReproSingleConnectGaugeAfterFallback (actors/connection, metrics): after a server that refused
// single-connect agrees again, the agent multiplexes on it (its status says so, and logins open no new
// connection) but tacagent_single_connect can stay 0: the gauge is one series per server, shared by the
// primary connection and the per-session ones, and a per-session connection that closes last sets it to
// 0 after the primary set it to 1 (TestRefusingSingleConnect). Here: a slow login B runs on a per-session
// connection while a fast login A, on another, tells the agent the server agrees again; login C then runs
// multiplexed on the primary connection (gauge 1); B's connection closes last (gauge 0).
func TestReproSingleConnectGaugeAfterFallback(t *testing.T) {
	users := map[string]tacplustest.User{user: {Password: password}, "slow": {Password: password, Delay: 300 * time.Millisecond}}
	refusing, err := tacplustest.Start(tacplustest.Config{Key: []byte(chaosKey), SingleConnect: false, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	addr := refusing.Addr()
	reg := prometheus.NewRegistry()
	a := reproAgent(t, agent.Config{Servers: []agent.Server{{Addr: addr, Key: []byte(chaosKey), Timeout: serverTimeout, IdleTimeout: -1}}},
		agent.WithRegisterer(reg))
	login := func(name string) error {
		ctx, cancel := context.WithTimeout(context.Background(), reqDeadline)
		defer cancel()
		_, err := a.Authenticate(ctx, agent.AuthenRequest{User: name, Type: tacplus.AuthenTypePAP, Password: []byte(password)}, nil)
		return err
	}
	multiplexing := func() bool {
		st, err := a.Status(context.Background())
		return err == nil && st.Servers[0].SingleConnect
	}
	if err := login(user); err != nil || multiplexing() {
		t.Fatalf("first login %v, multiplexing %v: want a pass on a refusing server, one connection per session", err, multiplexing())
	}
	// The same address now agrees to single-connect (a restart with another setting).
	refusing.Close()
	agreeing, err := tacplustest.Start(tacplustest.Config{Addr: addr, Key: []byte(chaosKey), SingleConnect: true, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	defer agreeing.Close()
	slow := make(chan error, 1)
	go func() { slow <- login("slow") }() // B: a per-session connection, answered in 300 ms
	if err := poll(waitLimit, func() (bool, string) {
		return agreeing.Stats().Sessions >= 1, "B not on the wire yet"
	}); err != nil {
		t.Fatal(err)
	}
	if err := login(user); err != nil { // A: a per-session connection that finds the server agrees
		t.Fatal(err)
	}
	if !multiplexing() {
		t.Fatal("the agent did not notice the server agrees again")
	}
	if err := login(user); err != nil { // C: multiplexed on the primary connection
		t.Fatal(err)
	}
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if err := poll(waitLimit, func() (bool, string) {
		return agreeing.Stats().OpenConnections == 1, "B's per-session connection still open"
	}); err != nil {
		t.Fatal(err)
	}
	s, err := GatherSamples(reg)
	if err != nil {
		t.Fatal(err)
	}
	if v := s.Sum("tacagent_single_connect", map[string]string{"server": addr}); v != 1 || !multiplexing() {
		t.Errorf("tacagent_single_connect = %v while the agent's status says single_connect %v on %s", v, multiplexing(), addr)
	}
}

// TestReproQueuedBehindSilentNegotiation (actors/connection): a new connection to a server that accepts
// and never answers (a blackhole, a hung server) sends its first request alone, to negotiate
// single-connect (RFC 8907 section 4.3), and queues the rest. When that first session times out, the
// connection is still negotiating and nothing ever sends or answers the queued requests: they wait for
// their callers' whole deadline and end ErrAborted ("aborted before it was sent"), although the
// secondary is up and the first request failed over to it after one timeout (TestSoak, "blackhole
// primary" on a fresh connection: 34 requests aborted after 4 s).
func TestReproQueuedBehindSilentNegotiation(t *testing.T) {
	silent := reproServer(t, true, 0)
	if err := silent.SetFaults(tacplustest.Faults{DropReplies: tacplustest.Always}); err != nil {
		t.Fatal(err)
	}
	good := reproServer(t, true, 0)
	const timeout, deadline = 300 * time.Millisecond, 3 * time.Second
	a := reproAgent(t, agent.Config{Servers: []agent.Server{
		{Addr: silent.Addr(), Key: []byte(chaosKey), Timeout: timeout},
		{Addr: good.Addr(), Key: []byte(chaosKey), Timeout: timeout}}})
	const n = 10
	type result struct {
		took time.Duration
		err  error
	}
	results := make(chan result, n)
	for range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			_, err := a.Authenticate(ctx, agent.AuthenRequest{User: user, Type: tacplus.AuthenTypePAP, Password: []byte(password)}, nil)
			results <- result{time.Since(start), err}
		}()
	}
	for range n {
		r := <-results
		if r.err != nil || r.took > 3*timeout {
			t.Errorf("login took %s and ended %v; want a pass from the second server after about one timeout (%s)",
				r.took.Round(time.Millisecond), r.err, timeout)
		}
	}
}

// TestReproAcceptThenCloseNeverDead (actors/supervisor): a server whose connections are accepted and then
// cut before any reply (a dead server behind a TCP proxy or load balancer, a middlebox resetting
// connections) is never dead-timed, because only a failed connect marks a server dead. Every login
// therefore goes to it first, waits for its connection actor's restart backoff, is cut again on the
// one same-server retry, and only then fails over. Here every login takes about 43 ms (twice the 20 ms
// initial backoff, which each successful connect resets) instead of about 1 ms; in TestSoak's
// "reset_peer primary" (connections reset 15 ms after a request) p50 was 447 ms and p99 833 ms, and the
// throughput fell by a factor of 30. docs/chaos.md: logins during a primary outage keep their
// normal p99.
func TestReproAcceptThenCloseNeverDead(t *testing.T) {
	good := reproServer(t, true, 0)
	// A listener that accepts and closes at once: what a TCP proxy in front of a dead server does.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-accepted }()
	a := reproAgent(t, agent.Config{Servers: []agent.Server{
		{Addr: ln.Addr().String(), Key: []byte(chaosKey), Timeout: serverTimeout},
		{Addr: good.Addr(), Key: []byte(chaosKey), Timeout: serverTimeout}},
		DeadTime: 30 * time.Second, BackoffInitial: backoffInitial, BackoffMax: backoffMax})
	var lat []time.Duration
	for range 40 {
		ctx, cancel := context.WithTimeout(context.Background(), reqDeadline)
		start := time.Now()
		_, err := a.Authenticate(ctx, agent.AuthenRequest{User: user, Type: tacplus.AuthenTypePAP, Password: []byte(password)}, nil)
		cancel()
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		lat = append(lat, time.Since(start))
	}
	sortDurations(lat)
	t.Logf("p50 %s p90 %s max %s", Percentile(lat, 0.5), Percentile(lat, 0.9), Percentile(lat, 1))
	// After the first few logins the first server should be skipped for the dead-time (30 s).
	if p90 := Percentile(lat, 0.9); p90 > 10*time.Millisecond {
		t.Errorf("40 logins with the first server cutting every connection: p50 %s p90 %s max %s; want the server dead-timed, logins at their normal few milliseconds",
			Percentile(lat, 0.5), p90, Percentile(lat, 1))
	}
}

// TestRevivalBehindProxy guards f491623's dead-timing of servers that accept and drop connections: both
// servers sit behind TCP proxies (Toxiproxy) and die together for a second, so both are dead-timed; once
// they are back, logins must pass again within the dead-time plus the restart backoff (plus a second).
func TestRevivalBehindProxy(t *testing.T) {
	n := NewNetwork()
	defer n.Close()
	users := map[string]tacplustest.User{user: {Password: password}}
	var servers []*tacplustest.Server
	var cfgs []agent.Server
	for i := range 2 {
		s, err := tacplustest.Start(tacplustest.Config{Key: []byte(chaosKey), SingleConnect: true, Users: users})
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, s)
		l, err := n.Link(fmt.Sprint("server", i), s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, agent.Server{Addr: l.Addr(), Key: []byte(chaosKey), Timeout: serverTimeout, DialTimeout: dialTimeout, IdleTimeout: -1})
	}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	a := reproAgent(t, agent.Config{Servers: cfgs, DeadTime: deadTime, BackoffInitial: backoffInitial, BackoffMax: backoffMax})
	login := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), reqDeadline)
		defer cancel()
		_, err := a.Authenticate(ctx, agent.AuthenRequest{User: user, Type: tacplus.AuthenTypePAP, Password: []byte(password)}, nil)
		return err
	}
	var up atomic.Int64 // unix nanos when the servers came back; 0 while down
	var firstOK atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10_000_000 {
				select {
				case <-stop:
					return
				default:
				}
				if login() == nil && up.Load() != 0 {
					firstOK.CompareAndSwap(0, time.Now().UnixNano())
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	if err := poll(waitLimit, func() (bool, string) { return servers[0].Stats().AuthenPass > 100, "no load yet" }); err != nil {
		t.Fatal(err)
	}
	addrs := []string{servers[0].Addr(), servers[1].Addr()}
	for _, s := range servers {
		s.Close()
	}
	timer := time.NewTimer(time.Second) // the outage: the load runs against two dead servers
	<-timer.C
	for i, addr := range addrs {
		s, err := tacplustest.Start(tacplustest.Config{Addr: addr, Key: []byte(chaosKey), SingleConnect: true, Users: users})
		if err != nil {
			t.Fatal(err)
		}
		servers[i] = s
	}
	back := time.Now()
	up.Store(back.UnixNano())
	bound := deadTime + backoffMax + time.Second
	if err := poll(4*bound, func() (bool, string) { return firstOK.Load() != 0, "no login passed yet" }); err != nil {
		t.Fatalf("no login passed within %s of both servers coming back: %v", 4*bound, err)
	}
	if took := time.Duration(firstOK.Load() - back.UnixNano()); took > bound {
		t.Errorf("the first login passed %s after both servers came back; want within %s (dead-time %s + backoff %s + 1 s)",
			took.Round(time.Millisecond), bound, deadTime, backoffMax)
	}
}
