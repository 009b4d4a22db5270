package proxy

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/localapi"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

var (
	serverKey = []byte("upstream-server-key-0123456789")
	localKey  = []byte("local-front-end-key-0123456789")
)

func testLog(t testing.TB) zerolog.Logger {
	if os.Getenv("PROXY_TEST_LOG") != "" {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}

// backend starts the project's test server with the accounts and rules every test uses.
func backend(t testing.TB, mod func(*tacplustest.Config)) *tacplustest.Server {
	t.Helper()
	cfg := tacplustest.Config{Key: serverKey, SingleConnect: true,
		Users: map[string]tacplustest.User{
			"alice": {Password: "alice-pw", EnablePassword: "alice-enable"},
			"bob":   {Password: "bob-pw", Prompts: []tacplustest.Prompt{{Message: "OTP code: ", Answer: "123456", NoEcho: true}}},
			"slow":  {Password: "slow-pw", Delay: 700 * time.Millisecond},
		},
		AuthorRules: []tacplustest.AuthorRule{
			{User: "alice", Command: "show .*", Permit: true, Args: []string{"priv-lvl=15"}},
			{User: "alice", Command: "reload", ServerMsg: "reload is not allowed"},
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := tacplustest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// newAgent is an agent over the servers at addrs, in that order.
func newAgent(t testing.TB, addrs ...string) *agent.Agent {
	t.Helper()
	cfg := agent.Config{BackoffInitial: 10 * time.Millisecond}
	for _, a := range addrs {
		cfg.Servers = append(cfg.Servers, agent.Server{Addr: a, Key: serverKey, Timeout: 2 * time.Second, DialTimeout: time.Second})
	}
	a, err := agent.New(cfg, agent.WithRegisterer(prometheus.NewRegistry()), agent.WithLogger(testLog(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Close(ctx)
	})
	return a
}

type front struct {
	*Server
	m    *metrics.Metrics
	addr string
}

// startFront serves the front end on a loopback port with backend b.
func startFront(t testing.TB, b Backend, mod func(*Config)) *front {
	t.Helper()
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Key: localKey, Backend: b, Log: testLog(t), Metrics: m, Limiter: localapi.NewLimiter(localapi.RateLimit{})}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &front{Server: s, m: m, addr: ln.Addr().String()}
}

func (f *front) counter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// waitFor waits (10 s at most) until cond holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, what, cond)
}

// rawClient speaks TACACS+ to the front end with the project's codec (a client role codec).
type rawClient struct {
	t     testing.TB
	nc    net.Conn
	codec *tacplus.Codec
	rd    *tacplus.Reader
}

func dialRaw(t testing.TB, addr string, key []byte) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	codec, err := tacplus.NewCodec(tacplus.Options{Role: tacplus.RoleClient, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, nc: nc, codec: codec, rd: codec.NewReader(nc)}
}

func (r *rawClient) send(h tacplus.Header, b tacplus.Body) {
	r.t.Helper()
	if err := r.trySend(h, b); err != nil {
		r.t.Fatal(err)
	}
}

// trySend is send for goroutines other than the test's: it returns the error.
func (r *rawClient) trySend(h tacplus.Header, b tacplus.Body) error {
	pkt, err := r.codec.Marshal(h, b)
	if err != nil {
		return err
	}
	_, err = r.nc.Write(pkt)
	return err
}

// recv reads one reply (10 s at most); err is the read error (io.EOF when the front end closed).
func (r *rawClient) recv() (tacplus.Header, tacplus.Body, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	h, raw, err := r.rd.Next()
	if err != nil {
		return h, nil, err
	}
	b, err := r.codec.NewBody(h)
	if err == nil {
		err = r.codec.DecodeBody(h, raw, b)
	}
	return h, b, err
}

func papStart(user, pw string) *tacplus.AuthenStart {
	return &tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1, Type: tacplus.AuthenTypePAP, Service: tacplus.ServiceLogin,
		User: user, Port: "tty1", RemAddr: "10.0.0.9", Data: pw}
}

func papHeader(id uint32, flags tacplus.HeaderFlag) tacplus.Header {
	return tacplus.Header{Version: tacplus.VersionByte(1), Type: tacplus.TypeAuthen, SeqNo: 1, SessionID: id, Flags: flags}
}

// dialRawErr dials without failing the test.
func dialRawErr(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return c, err
}
