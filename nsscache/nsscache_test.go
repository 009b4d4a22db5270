package nsscache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
)

// clock is a settable clock for the TTLs.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// servers answers lookups from a table the test sets: the args of a permit, or an error. gate, when set,
// holds every lookup until it is closed (or the lookup's context ends).
type servers struct {
	mu    sync.Mutex
	users map[string][]string
	errs  map[string]error
	gate  chan struct{}
	calls atomic.Int64
}

func (s *servers) lookup(ctx context.Context, user string) ([]string, error) {
	s.calls.Add(1)
	s.mu.Lock()
	gate := s.gate
	args, ok := s.users[user]
	err := s.errs[user]
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, &tacplus.Error{Class: tacplus.ErrTimeout, Msg: "lookup cancelled", Err: ctx.Err()}
		}
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &tacplus.Error{Class: tacplus.ErrDenied, Msg: "unknown user"}
	}
	return args, nil
}

var templates = []Template{
	{Name: "tacacs15", MinPriv: 15, MaxPriv: 15, UID: 2015, GID: 2015, Gecos: "TACACS+ %u", Home: "/home/%u", Shell: "/bin/bash"},
	{Name: "tacacs1", MinPriv: 1, MaxPriv: 14, UID: 2001, GID: 2001, Gecos: "TACACS+ %u", Home: "/home/tacacs1", Shell: "/bin/rbash"},
}

func newCache(t *testing.T, cfg Config) (*Cache, *servers, *clock, *metrics.Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	srv := &servers{users: map[string][]string{}, errs: map[string]error{}}
	if cfg.Templates == nil {
		cfg.Templates = templates
	}
	cfg.Metrics, cfg.Now = m.NSS, clk.now
	c := New(cfg, srv.lookup)
	t.Cleanup(c.Close)
	return c, srv, clk, m
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestMapsPrivLvlToTemplate(t *testing.T) {
	c, srv, _, m := newCache(t, Config{})
	srv.users["alice"] = []string{"service=shell", "priv-lvl=15"}
	srv.users["bob"] = []string{"priv-lvl=7"}
	srv.users["carol"] = nil // a permit that names no level: DefaultPrivLvl

	for _, tc := range []struct {
		user string
		want Passwd
	}{
		{"alice", Passwd{Name: "alice", UID: 2015, GID: 2015, Gecos: "TACACS+ alice", Dir: "/home/alice", Shell: "/bin/bash"}},
		{"bob", Passwd{Name: "bob", UID: 2001, GID: 2001, Gecos: "TACACS+ bob", Dir: "/home/tacacs1", Shell: "/bin/rbash"}},
		{"carol", Passwd{Name: "carol", UID: 2001, GID: 2001, Gecos: "TACACS+ carol", Dir: "/home/tacacs1", Shell: "/bin/rbash"}},
	} {
		pw, res := c.ByName(ctxFor(t, 10*time.Second), 0, tc.user)
		if res != Found || pw != tc.want {
			t.Errorf("ByName(%s) = %+v %v, want %+v found", tc.user, pw, res, tc.want)
		}
	}
	// Answered from the cache now: no new lookup.
	before := srv.calls.Load()
	for range 10 {
		if _, res := c.ByName(ctxFor(t, time.Second), 0, "alice"); res != Found {
			t.Fatalf("cached alice: %v", res)
		}
	}
	if n := srv.calls.Load() - before; n != 0 {
		t.Errorf("%d lookups for cached names, want 0", n)
	}
	if got := testutil.ToFloat64(m.NSS.Cache.WithLabelValues("hit")); got != 10 {
		t.Errorf("hits = %v, want 10", got)
	}
	if got := testutil.ToFloat64(m.NSS.Lookups.WithLabelValues("permit")); got != 3 {
		t.Errorf("permit lookups = %v, want 3", got)
	}
}

func TestNegativeTTL(t *testing.T) {
	c, srv, clk, m := newCache(t, Config{NegativeTTL: time.Minute})
	if _, res := c.ByName(ctxFor(t, 10*time.Second), 0, "mallory"); res != NotFound {
		t.Fatalf("unknown user: %v, want notfound", res)
	}
	if _, res := c.ByName(ctxFor(t, time.Second), 0, "mallory"); res != NotFound || srv.calls.Load() != 1 {
		t.Fatalf("second lookup: %v after %d lookups, want notfound from the cache", res, srv.calls.Load())
	}
	if got := testutil.ToFloat64(m.NSS.Cache.WithLabelValues("negative_hit")); got != 1 {
		t.Errorf("negative hits = %v, want 1", got)
	}
	// The user is added on the server: seen once the negative entry expires, not before.
	srv.mu.Lock()
	srv.users["mallory"] = []string{"priv-lvl=15"}
	srv.mu.Unlock()
	clk.add(59 * time.Second)
	if _, res := c.ByName(ctxFor(t, time.Second), 0, "mallory"); res != NotFound {
		t.Fatalf("before the negative TTL: %v", res)
	}
	clk.add(time.Second)
	if pw, res := c.ByName(ctxFor(t, 10*time.Second), 0, "mallory"); res != Found || pw.UID != 2015 {
		t.Fatalf("after the negative TTL: %+v %v", pw, res)
	}
}

func TestNoTemplateIsNotFound(t *testing.T) {
	c, srv, _, m := newCache(t, Config{})
	srv.users["zero"] = []string{"priv-lvl=0"} // no template covers 0
	srv.users["bad"] = []string{"priv-lvl=16"}
	for _, u := range []string{"zero", "bad"} {
		if _, res := c.ByName(ctxFor(t, 10*time.Second), 0, u); res != NotFound {
			t.Errorf("%s: %v, want notfound", u, res)
		}
	}
	if got := testutil.ToFloat64(m.NSS.Lookups.WithLabelValues("no_template")); got != 2 {
		t.Errorf("no_template = %v, want 2", got)
	}
}

func TestUnavailableIsNotCached(t *testing.T) {
	c, srv, _, _ := newCache(t, Config{})
	srv.errs["alice"] = &tacplus.Error{Class: tacplus.ErrUnreachable, Msg: "every server is dead"}
	if _, res := c.ByName(ctxFor(t, 10*time.Second), 0, "alice"); res != Unavailable {
		t.Fatalf("servers down: %v, want unavailable", res)
	}
	srv.mu.Lock()
	delete(srv.errs, "alice")
	srv.users["alice"] = []string{"priv-lvl=15"}
	srv.mu.Unlock()
	if _, res := c.ByName(ctxFor(t, 10*time.Second), 0, "alice"); res != Found {
		t.Fatalf("servers back: %v, want found (no negative entry from an outage)", res)
	}
	// A server ERROR is not a refusal either.
	srv.errs["bob"] = &tacplus.Error{Class: tacplus.ErrServerError, Msg: "ERROR"}
	if _, res := c.ByName(ctxFor(t, 10*time.Second), 0, "bob"); res != Unavailable {
		t.Fatalf("server ERROR: %v, want unavailable", res)
	}
}

// A caller never waits past its deadline for a slow server; the lookup fills the cache afterwards.
func TestSlowServerNeverBlocksCaller(t *testing.T) {
	c, srv, _, _ := newCache(t, Config{})
	srv.users["alice"] = []string{"priv-lvl=15"}
	gate := make(chan struct{})
	srv.gate = gate
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, res := c.ByName(ctx, 0, "alice"); res != Unavailable {
		t.Fatalf("slow server: %v, want unavailable", res)
	}
	if ctx.Err() == nil {
		t.Fatal("ByName returned unavailable before the caller's deadline")
	}
	close(gate)
	deadline := time.Now().Add(20 * time.Second)
	for c.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the background lookup never filled the cache")
		}
		time.Sleep(time.Millisecond)
	}
	if _, res := c.ByName(ctxFor(t, time.Second), 0, "alice"); res != Found || srv.calls.Load() != 1 {
		t.Fatalf("after the lookup: %v, %d lookups", res, srv.calls.Load())
	}
}

// Concurrent callers for one name share one lookup.
func TestOneLookupPerName(t *testing.T) {
	c, srv, _, _ := newCache(t, Config{})
	srv.users["alice"] = []string{"priv-lvl=15"}
	gate := make(chan struct{})
	srv.gate = gate
	var wg sync.WaitGroup
	var found atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, res := c.ByName(ctxFor(t, 20*time.Second), 0, "alice"); res == Found {
				found.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for srv.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	if srv.calls.Load() != 1 || found.Load() != 20 {
		t.Fatalf("%d lookups, %d found; want 1 lookup, 20 found", srv.calls.Load(), found.Load())
	}
}

func TestStaleEntryRefreshedInBackground(t *testing.T) {
	c, srv, clk, m := newCache(t, Config{PositiveTTL: 10 * time.Minute, RefreshAfter: 5 * time.Minute})
	srv.users["alice"] = []string{"priv-lvl=15"}
	if _, res := c.ByName(ctxFor(t, 10*time.Second), 0, "alice"); res != Found {
		t.Fatal(res)
	}
	// Demoted on the server; the cache refreshes after 5 minutes, answering the old entry meanwhile.
	srv.mu.Lock()
	srv.users["alice"] = []string{"priv-lvl=3"}
	srv.mu.Unlock()
	gate := make(chan struct{})
	srv.gate = gate
	clk.add(5 * time.Minute)
	pw, res := c.ByName(ctxFor(t, 10*time.Second), 0, "alice")
	if res != Found || pw.UID != 2015 {
		t.Fatalf("stale hit: %+v %v, want the cached tacacs15 entry at once", pw, res)
	}
	if got := testutil.ToFloat64(m.NSS.Cache.WithLabelValues("stale")); got != 1 {
		t.Errorf("stale = %v, want 1", got)
	}
	close(gate)
	deadline := time.Now().Add(20 * time.Second)
	for {
		pw, _ = c.ByName(ctxFor(t, time.Second), 0, "alice")
		if pw.UID == 2001 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refresh never applied: %+v", pw)
		}
		time.Sleep(time.Millisecond)
	}
	// Removed on the server: the next refresh makes it a negative entry.
	srv.mu.Lock()
	delete(srv.users, "alice")
	srv.mu.Unlock()
	clk.add(5 * time.Minute)
	c.ByName(ctxFor(t, time.Second), 0, "alice")
	for {
		if _, res := c.ByName(ctxFor(t, time.Second), 0, "alice"); res == NotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a refresh that was refused did not remove the user")
		}
		time.Sleep(time.Millisecond)
	}
}

// An entry whose refresh finds the servers down stays until it expires, then the name is unavailable.
func TestRefreshDuringOutage(t *testing.T) {
	c, srv, clk, _ := newCache(t, Config{PositiveTTL: 10 * time.Minute, RefreshAfter: 5 * time.Minute})
	srv.users["alice"] = []string{"priv-lvl=15"}
	c.ByName(ctxFor(t, 10*time.Second), 0, "alice")
	srv.mu.Lock()
	srv.errs["alice"] = &tacplus.Error{Class: tacplus.ErrUnreachable, Msg: "down"}
	srv.mu.Unlock()
	clk.add(6 * time.Minute)
	for range 3 {
		if _, res := c.ByName(ctxFor(t, 10*time.Second), 0, "alice"); res != Found {
			t.Fatalf("during the outage, before expiry: %v", res)
		}
	}
	clk.add(4 * time.Minute)
	if _, res := c.ByName(ctxFor(t, 10*time.Second), 0, "alice"); res != Unavailable {
		t.Fatalf("expired during the outage: %v, want unavailable", res)
	}
}

func TestLookupLimits(t *testing.T) {
	c, srv, _, m := newCache(t, Config{MaxLookups: 2, CallerLookups: 3})
	gate := make(chan struct{})
	srv.gate = gate
	short := func() context.Context { return ctxFor(t, 5*time.Millisecond) }
	// A local user (uid 1000) starts 2 lookups; the global bound refuses the third at once.
	c.ByName(short(), 1000, "u1")
	c.ByName(short(), 1000, "u2")
	start := time.Now()
	if _, res := c.ByName(ctxFor(t, 10*time.Second), 0, "u3"); res != Unavailable {
		t.Fatalf("over MaxLookups: %v", res)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("a refused lookup waited")
	}
	close(gate)
	deadline := time.Now().Add(20 * time.Second)
	for srv.calls.Load() < 2 || c.Len() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("lookups never ended")
		}
		time.Sleep(time.Millisecond)
	}
	// Its share of this second (3) has one lookup left; root is not limited per uid.
	if _, res := c.ByName(ctxFor(t, 10*time.Second), 1000, "u4"); res != NotFound {
		t.Fatalf("third lookup of uid 1000: %v", res)
	}
	if _, res := c.ByName(ctxFor(t, 10*time.Second), 1000, "u5"); res != Unavailable {
		t.Fatalf("fourth lookup of uid 1000 in one second: %v, want unavailable", res)
	}
	if _, res := c.ByName(ctxFor(t, 10*time.Second), 0, "u6"); res != NotFound {
		t.Fatalf("root: %v", res)
	}
	if got := testutil.ToFloat64(m.NSS.Cache.WithLabelValues("busy")); got != 2 {
		t.Errorf("busy = %v, want 2", got)
	}
}

func TestByUIDAndTemplateNames(t *testing.T) {
	c, srv, _, _ := newCache(t, Config{})
	if pw, res := c.ByUID(2015); res != Found || pw.Name != "tacacs15" || pw.Dir != "/home/tacacs15" {
		t.Errorf("ByUID(2015) = %+v %v", pw, res)
	}
	if _, res := c.ByUID(0); res != NotFound {
		t.Errorf("ByUID(0) = %v", res)
	}
	if pw, res := c.ByName(ctxFor(t, time.Second), 0, "tacacs1"); res != Found || pw.UID != 2001 {
		t.Errorf("ByName(tacacs1) = %+v %v", pw, res)
	}
	if srv.calls.Load() != 0 {
		t.Errorf("%d server lookups for templates, want 0", srv.calls.Load())
	}
}

func TestInvalidNamesNeverAsked(t *testing.T) {
	c, srv, _, _ := newCache(t, Config{})
	for _, n := range []string{"", "-rf", ".hidden", "a:b", "a/b", "a b", "1000", "a,b", "é", "x\n",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		if _, res := c.ByName(ctxFor(t, time.Second), 0, n); res != NotFound {
			t.Errorf("%q: %v", n, res)
		}
	}
	if srv.calls.Load() != 0 {
		t.Errorf("%d lookups for invalid names", srv.calls.Load())
	}
	for _, n := range []string{"alice", "a.b-c_d@example.com", "A1", "x"} {
		if !ValidName(n) {
			t.Errorf("%q refused", n)
		}
	}
}

func TestMaxEntries(t *testing.T) {
	c, _, _, _ := newCache(t, Config{MaxEntries: 8})
	for i := range 40 {
		c.ByName(ctxFor(t, 10*time.Second), 0, "user"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	if n := c.Len(); n > 8 {
		t.Fatalf("%d entries, cap 8", n)
	}
}

func TestCloseEndsLookups(t *testing.T) {
	c, srv, _, _ := newCache(t, Config{})
	srv.gate = make(chan struct{}) // never opened: Close must cancel the lookup
	c.ByName(ctxFor(t, 5*time.Millisecond), 0, "alice")
	c.Close()
	if _, res := c.ByName(ctxFor(t, time.Second), 0, "bob"); res != Unavailable {
		t.Fatalf("after Close: %v", res)
	}
}
