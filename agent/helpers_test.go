package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testKey is the shared secret of every test server.
var testKey = []byte("agent-test-key")

// waitLimit bounds every wait on a condition in these tests.
const waitLimit = 10 * time.Second

// eventually waits until cond holds, failing the test when it still does not after limit.
func eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, limit, what, cond)
}

// users is the default account table: alice (PAP, ASCII), and slow, whose replies are held back.
func users() map[string]tacplustest.User {
	return map[string]tacplustest.User{
		"alice": {Password: "alice-pw"},
		"slow":  {Password: "slow-pw", Delay: 2 * time.Second},
	}
}

// startServer starts a tacplustest server that agrees to single-connect; mod adjusts its config.
func startServer(t testing.TB, mod func(*tacplustest.Config)) *tacplustest.Server {
	t.Helper()
	cfg := tacplustest.Config{Key: testKey, SingleConnect: true, Users: users(),
		AuthorRules: []tacplustest.AuthorRule{{User: "alice", Command: "show .*", Permit: true, Args: []string{"priv-lvl=15"}}}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := tacplustest.Start(cfg)
	if err != nil {
		t.Fatalf("tacplustest.Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testLogger writes warnings and errors to stderr when TACAGENT_TEST_LOG is set, and nothing otherwise.
func testLogger() zerolog.Logger {
	if os.Getenv("TACAGENT_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(os.Stderr).Level(zerolog.DebugLevel)
}

// harness is an agent under test with its metrics registry.
type harness struct {
	*agent.Agent
	reg *prometheus.Registry
}

// server returns an agent.Server for s with the test key and short timeouts.
func server(addr string) agent.Server {
	return agent.Server{Addr: addr, Key: testKey, Timeout: 5 * time.Second, DialTimeout: 3 * time.Second}
}

// newAgent starts an agent and closes it when the test ends.
func newAgent(t testing.TB, cfg agent.Config) *harness {
	t.Helper()
	if cfg.BackoffInitial == 0 {
		cfg.BackoffInitial = 10 * time.Millisecond
	}
	reg := prometheus.NewRegistry()
	a, err := agent.New(cfg, agent.WithRegisterer(reg), agent.WithLogger(testLogger()))
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Close(ctx)
	})
	return &harness{Agent: a, reg: reg}
}

// metric reads one series of the agent's collectors.
func (h *harness) metric(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

func (h *harness) m() *metrics.Metrics { return h.Metrics() }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func pap(user, pw string) agent.AuthenRequest {
	return agent.AuthenRequest{User: user, Type: tacplus.AuthenTypePAP, Password: []byte(pw)}
}

// login runs one PAP login and fails the test on error.
func (h *harness) login(t testing.TB, user, pw string) *agent.AuthenReply {
	t.Helper()
	r, err := h.Authenticate(ctxT(t), pap(user, pw), nil)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return r
}

// wantClass fails unless err belongs to class.
func wantClass(t testing.TB, err, class error) {
	t.Helper()
	if !errors.Is(err, class) {
		t.Fatalf("error %v, want class %v", err, class)
	}
	var te *tacplus.Error
	if class != nil && !errors.As(err, &te) {
		t.Fatalf("error %T is not a *tacplus.Error", err)
	}
}

// deadAddr returns a loopback address nobody listens on, for the whole test: a TCP socket bound to it and
// never put in listen state holds the port (connects are refused), so that no other test, of this package
// or of another running at the same time, can take the port and answer (or blackhole) instead.
func deadAddr(t testing.TB) string {
	t.Helper()
	addr, _ := heldDeadAddr(t)
	return addr
}

// heldDeadAddr is deadAddr plus release, which frees the port at once, for a test that brings a server
// up at that address later.
func heldDeadAddr(t testing.TB) (addr string, release func()) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { syscall.Close(fd) }) }
	t.Cleanup(release)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)), release
}

// countingDial is a dialer that counts its attempts.
type countingDial struct{ n atomic.Int64 }

func (c *countingDial) dial(ctx context.Context, addr string) (net.Conn, error) {
	c.n.Add(1)
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// runParallel runs f(i) for i in [0, n) on n goroutines and waits for all.
func runParallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
}

// firstErrs keeps the first few errors of a parallel run.
type firstErrs struct {
	mu   sync.Mutex
	errs []string
	n    int
}

func (f *firstErrs) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if len(f.errs) < 5 {
		f.errs = append(f.errs, fmt.Sprintf(format, args...))
	}
}

func (f *firstErrs) check(t testing.TB) {
	t.Helper()
	if f.n > 0 {
		t.Fatalf("%d failures, first: %s", f.n, strings.Join(f.errs, "; "))
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func asTacErr(err error, te **tacplus.Error) bool { return errors.As(err, te) }
