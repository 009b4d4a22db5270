package tlsconf_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/internal/testkit"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
	"github.com/tacagent/tacagent/tlsconf"
	"github.com/tacagent/tacagent/tlsconf/testca"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitLimit bounds every wait in these tests; the machine is shared and slow.
const waitLimit = 20 * time.Second

// serverName is the DNS name the test servers' certificates carry.
const serverName = "tacacs.test"

// pki is one test's certificate world: a CA the agent trusts, a server certificate for serverName and
// 127.0.0.1, and a client certificate from a second CA the server trusts.
type pki struct {
	ca, clientCA *testca.CA
	server       *testca.Issued
	client       *testca.Issued
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca, err := testca.New("tacagent test server CA")
	if err != nil {
		t.Fatal(err)
	}
	cca, err := testca.New("tacagent test client CA")
	if err != nil {
		t.Fatal(err)
	}
	return &pki{ca: ca, clientCA: cca,
		server: ca.MustIssue(testca.Leaf{CommonName: serverName, DNSNames: []string{serverName}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}),
		client: cca.MustIssue(testca.Leaf{CommonName: "agent", DNSNames: []string{"agent.test"}, Client: true}),
	}
}

// serverTLS is a TLS 1.3 server configuration presenting cert.
func serverTLS(cert *testca.Issued) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert.TLS}}
}

// mtls makes c require a client certificate from ca.
func mtls(c *tls.Config, ca *testca.CA) *tls.Config {
	c.ClientAuth = tls.RequireAndVerifyClientCert
	c.ClientCAs = ca.Pool()
	return c
}

func users() map[string]tacplustest.User {
	return map[string]tacplustest.User{"alice": {Password: "alice-pw"}, "slow": {Password: "slow-pw", Delay: 500 * time.Millisecond}}
}

// startTLSServer starts the project's test server over TLS with tc.
func startTLSServer(t testing.TB, tc *tls.Config, mod func(*tacplustest.Config)) *tacplustest.Server {
	t.Helper()
	cfg := tacplustest.Config{Key: []byte("unused-over-tls"), SingleConnect: true, KeepOpen: true, Users: users(), TLS: tc,
		AuthorRules: []tacplustest.AuthorRule{{User: "alice", Command: "show .*", Permit: true}}}
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

// clientSettings trusts p's CA and names serverName.
func (p *pki) clientSettings() tlsconf.Settings {
	return tlsconf.Settings{ServerName: serverName, RootCAs: p.ca.Pool()}
}

func newDialer(t testing.TB, s tlsconf.Settings) *tlsconf.Dialer {
	t.Helper()
	d, err := tlsconf.New(s, "")
	if err != nil {
		t.Fatalf("tlsconf.New: %v", err)
	}
	return d
}

// tlsServer is the agent.Server of a TLS server at addr: no key, UNENCRYPTED, dialed by d.
func tlsServer(addr string, d *tlsconf.Dialer) agent.Server {
	return agent.Server{Addr: addr, Unencrypted: true, AllowUnencrypted: true, Dial: d.Dial,
		Timeout: 5 * time.Second, DialTimeout: 5 * time.Second}
}

type harness struct {
	*agent.Agent
	reg *prometheus.Registry
}

func testLogger() zerolog.Logger {
	if os.Getenv("TACAGENT_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(os.Stderr).Level(zerolog.DebugLevel)
}

func newAgent(t testing.TB, servers ...agent.Server) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	a, err := agent.New(agent.Config{Servers: servers, BackoffInitial: 10 * time.Millisecond, DeadTime: time.Minute},
		agent.WithRegisterer(reg), agent.WithLogger(testLogger()))
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Close(ctx)
	})
	return &harness{Agent: a, reg: reg}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func pap(user, pw string) agent.AuthenRequest {
	r := agent.AuthenRequest{User: user, Type: tacplus.AuthenTypePAP}
	setPassword(&r, pw)
	return r
}

// setPassword fills AuthenRequest.Password whether it is a string or a []byte (branch wt/core moves it to
// []byte), so that these tests compile on both sides of that merge.
func setPassword(r *agent.AuthenRequest, pw string) {
	f := reflect.ValueOf(r).Elem().FieldByName("Password")
	if f.Kind() == reflect.String {
		f.SetString(pw)
	} else {
		f.SetBytes([]byte(pw))
	}
}

func (h *harness) login(t testing.TB, user, pw string) *agent.AuthenReply {
	t.Helper()
	r, err := h.Authenticate(ctxT(t), pap(user, pw), nil)
	if err != nil {
		t.Fatalf("login %s over TLS: %v", user, err)
	}
	if r.Status != tacplus.AuthenStatusPass {
		t.Fatalf("login %s over TLS: status %v, want PASS", user, r.Status)
	}
	return r
}

func (h *harness) failures(addr, reason string) float64 {
	return testutil.ToFloat64(h.Metrics().TLS.HandshakeFailures.WithLabelValues(addr, reason))
}

func (h *harness) handshakes(addr string) float64 {
	return testutil.ToFloat64(h.Metrics().TLS.Handshakes.WithLabelValues(addr))
}

func (h *harness) expiry(addr, role string) float64 {
	return testutil.ToFloat64(h.Metrics().TLS.CertExpiry.WithLabelValues(addr, role))
}

// eventually waits for cond with a generous deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, waitLimit, what, cond)
}

func pinOf(c *x509.Certificate) string { return tlsconf.PinOf(c) }
