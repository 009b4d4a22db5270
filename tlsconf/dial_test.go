package tlsconf_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
	"github.com/tacagent/tacagent/tlsconf"
	"github.com/tacagent/tacagent/tlsconf/testca"
)

// TestRoundTripOverTLS runs authentication (PASS and FAIL), authorization and accounting over TLS 1.3 with
// the project's test server, and checks what the handshake established.
func TestRoundTripOverTLS(t *testing.T) {
	p := newPKI(t)
	srv := startTLSServer(t, serverTLS(p.server), nil)
	d := newDialer(t, p.clientSettings())
	h := newAgent(t, tlsServer(srv.Addr(), d))

	h.login(t, "alice", "alice-pw")
	_, err := h.Authenticate(ctxT(t), pap("alice", "wrong"), nil)
	if !errors.Is(err, tacplus.ErrAuthenticationFailed) {
		t.Fatalf("wrong password over TLS: %v, want ErrAuthenticationFailed", err)
	}
	ar, err := h.Authorize(ctxT(t), agent.AuthorRequest{User: "alice", Args: []string{"service=shell", "cmd=show", "cmd-arg=version"}})
	if err != nil {
		t.Fatalf("authorize over TLS: %v", err)
	}
	if ar.Status != tacplus.AuthorStatusPassAdd && ar.Status != tacplus.AuthorStatusPassRepl {
		t.Fatalf("authorize status %v", ar.Status)
	}
	if _, err := h.Account(ctxT(t), agent.AcctRequest{Flags: tacplus.AcctFlagStart, User: "alice", Args: []string{"task_id=1", "service=shell"}}); err != nil {
		t.Fatalf("account over TLS: %v", err)
	}
	if n := len(srv.Accounting()); n != 1 {
		t.Fatalf("server saw %d accounting records, want 1", n)
	}

	st, ok := d.State()
	if !ok {
		t.Fatal("no handshake state recorded")
	}
	if st.Version != "TLS 1.3" || st.PeerIdentity != "DNS:"+serverName {
		t.Fatalf("state %+v, want TLS 1.3 and DNS:%s", st, serverName)
	}
	if !st.PeerExpiry.Equal(p.server.Cert.NotAfter) {
		t.Fatalf("peer expiry %v, want %v", st.PeerExpiry, p.server.Cert.NotAfter)
	}
	if got := h.handshakes(srv.Addr()); got != 1 {
		t.Fatalf("handshakes = %v, want 1 (one multiplexed connection)", got)
	}
	if got, want := h.expiry(srv.Addr(), "server"), float64(p.server.Cert.NotAfter.Unix()); got != want {
		t.Fatalf("server expiry gauge %v, want %v", got, want)
	}
	if s := srv.Stats(); s.BadPackets != 0 || s.ProtocolErrors != 0 || s.Sessions != 4 {
		t.Fatalf("server stats %+v, want 4 clean sessions", s)
	}
}

// TestIPIdentity: with no server_name the reference identity is the address's IP, matched against
// iPAddress SANs; a certificate carrying the IP only as a DNS name (or CN) is refused.
func TestIPIdentity(t *testing.T) {
	p := newPKI(t)
	srv := startTLSServer(t, serverTLS(p.server), nil)
	d := newDialer(t, tlsconf.Settings{RootCAs: p.ca.Pool()})
	h := newAgent(t, tlsServer(srv.Addr(), d))
	h.login(t, "alice", "alice-pw")
	if st, _ := d.State(); st.PeerIdentity != "IP:127.0.0.1" {
		t.Fatalf("identity %q, want IP:127.0.0.1", st.PeerIdentity)
	}

	bad := p.ca.MustIssue(testca.Leaf{CommonName: "127.0.0.1", DNSNames: []string{"127.0.0.1"}})
	srv2 := startTLSServer(t, serverTLS(bad), nil)
	d2 := newDialer(t, tlsconf.Settings{RootCAs: p.ca.Pool()})
	h2 := newAgent(t, tlsServer(srv2.Addr(), d2))
	_, err := h2.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	wantRefused(t, h2, srv2, err, tlsconf.ReasonWrongName)
}

// wantRefused checks a refused handshake: the request fails as unreachable with the reason in the message,
// the failure is counted by reason, and not one TACACS+ packet reached the server (no plaintext fallback).
func wantRefused(t *testing.T, h *harness, srv *tacplustest.Server, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("request succeeded; want a refused TLS handshake (%s)", reason)
	}
	if !errors.Is(err, tacplus.ErrUnreachable) {
		t.Fatalf("error %v; want ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), "("+reason+")") {
		t.Fatalf("error %q does not name the reason %q", err, reason)
	}
	if got := h.failures(srv.Addr(), reason); got < 1 {
		t.Fatalf("tls_handshake_failures_total{reason=%q} = %v, want >= 1", reason, got)
	}
	if s := srv.Stats(); s.PacketsIn != 0 {
		t.Fatalf("server read %d TACACS+ packets through a refused handshake", s.PacketsIn)
	}
}

// TestRefusals: every certificate or protocol problem refuses the server, with its own reason.
func TestRefusals(t *testing.T) {
	p := newPKI(t)
	other, err := testca.New("someone else's CA")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cases := []struct {
		name   string
		server *tls.Config
		client func(*tlsconf.Settings)
		reason string
	}{
		{"expired", serverTLS(p.ca.MustIssue(testca.Leaf{DNSNames: []string{serverName}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})), nil, tlsconf.ReasonExpired},
		{"not yet valid", serverTLS(p.ca.MustIssue(testca.Leaf{DNSNames: []string{serverName}, NotBefore: now.Add(time.Hour)})), nil, tlsconf.ReasonNotYetValid},
		{"wrong name", serverTLS(p.ca.MustIssue(testca.Leaf{DNSNames: []string{"other.test"}})), nil, tlsconf.ReasonWrongName},
		{"cn only, no san", serverTLS(p.ca.MustIssue(testca.Leaf{CommonName: serverName})), nil, tlsconf.ReasonWrongName},
		{"partial wildcard", serverTLS(p.ca.MustIssue(testca.Leaf{DNSNames: []string{"tac*.test"}})), nil, tlsconf.ReasonWrongName},
		{"unknown ca", serverTLS(other.MustIssue(testca.Leaf{DNSNames: []string{serverName}})), nil, tlsconf.ReasonUnknownCA},
		{"client certificate for a server", serverTLS(p.ca.MustIssue(testca.Leaf{DNSNames: []string{serverName}, Client: true})), nil, tlsconf.ReasonBadCertificate},
		{"pin mismatch", serverTLS(p.server), func(s *tlsconf.Settings) { s.Pins = []string{pinOf(other.Cert)} }, tlsconf.ReasonPinMismatch},
		{"tls 1.2 only", &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, Certificates: []tls.Certificate{p.server.TLS}}, nil, tlsconf.ReasonVersion},
		{"client certificate required", mtls(serverTLS(p.server), p.clientCA), nil, tlsconf.ReasonCertRequired},
		{"client certificate rejected", mtls(serverTLS(p.server), p.clientCA), func(s *tlsconf.Settings) {
			c := other.MustIssue(testca.Leaf{DNSNames: []string{"agent.test"}, Client: true}).TLS
			s.Certificate = &c
		}, tlsconf.ReasonClientRejected},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startTLSServer(t, c.server, nil)
			s := p.clientSettings()
			if c.client != nil {
				c.client(&s)
			}
			h := newAgent(t, tlsServer(srv.Addr(), newDialer(t, s)))
			_, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
			if c.reason == tlsconf.ReasonCertRequired || c.reason == tlsconf.ReasonClientRejected {
				// TLS 1.3: the server judges the client certificate after the client's side of the handshake
				// is done, so the refusal arrives as an alert on the first read. It still fails closed.
				wantLateRefusal(t, h, srv, err, c.reason)
				return
			}
			wantRefused(t, h, srv, err, c.reason)
		})
	}
}

// wantLateRefusal checks a refusal that the TLS 1.3 server sends after the client's Finished: the request
// fails (never PASS), the error names the reason, the server authenticated nobody.
func wantLateRefusal(t *testing.T, h *harness, srv *tacplustest.Server, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("request succeeded; want the server's refusal (%s)", reason)
	}
	t.Logf("late refusal: %v", err)
	if !strings.Contains(err.Error(), "("+reason+")") {
		t.Fatalf("error %q does not name the reason %q", err, reason)
	}
	if got := h.failures(srv.Addr(), reason); got < 1 {
		t.Fatalf("tls_handshake_failures_total{reason=%q} = %v, want >= 1", reason, got)
	}
	if s := srv.Stats(); s.PacketsIn != 0 || s.AuthenPass != 0 {
		t.Fatalf("server stats %+v: a packet got through", s)
	}
}

// TestStalledHandshake: a server that accepts TCP and never answers the ClientHello is given up on at the
// connect timeout, and the request fails as unreachable (not a hang, not a plaintext retry).
func TestStalledHandshake(t *testing.T) {
	p := newPKI(t)
	st, err := tacplustest.StartStall("")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := tlsServer(st.Addr(), newDialer(t, p.clientSettings()))
	srv.DialTimeout = 300 * time.Millisecond
	h := newAgent(t, srv)
	start := time.Now()
	_, err = h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	took := time.Since(start)
	if !errors.Is(err, tacplus.ErrUnreachable) || !strings.Contains(err.Error(), "("+tlsconf.ReasonTimeout+")") {
		t.Fatalf("stalled handshake: %v, want ErrUnreachable naming %q", err, tlsconf.ReasonTimeout)
	}
	if got := h.failures(st.Addr(), tlsconf.ReasonTimeout); got < 1 {
		t.Fatalf("timeout not counted: %v", got)
	}
	if st.Accepted() == 0 {
		t.Fatal("the stalling server never saw a connection")
	}
	t.Logf("stalled handshake refused after %v (connect timeout 300ms)", took)
}

// TestFailoverOnHandshakeFailure: a server whose certificate is refused is dead-timed and the login goes
// to the next server, which is plain TLS-good.
func TestFailoverOnHandshakeFailure(t *testing.T) {
	p := newPKI(t)
	expired := p.ca.MustIssue(testca.Leaf{DNSNames: []string{serverName}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	bad := startTLSServer(t, serverTLS(expired), nil)
	good := startTLSServer(t, serverTLS(p.server), nil)
	h := newAgent(t, tlsServer(bad.Addr(), newDialer(t, p.clientSettings())), tlsServer(good.Addr(), newDialer(t, p.clientSettings())))
	r := h.login(t, "alice", "alice-pw")
	if r.Server != good.Addr() {
		t.Fatalf("login answered by %s, want the good server %s", r.Server, good.Addr())
	}
	eventually(t, "the refused server is dead-timed", func() bool {
		return testutil.ToFloat64(h.Metrics().ServerDead.WithLabelValues(bad.Addr())) == 1
	})
	if got := h.failures(bad.Addr(), tlsconf.ReasonExpired); got < 1 {
		t.Fatalf("expired not counted: %v", got)
	}
	if s := bad.Stats(); s.PacketsIn != 0 {
		t.Fatalf("the refused server read %d packets", s.PacketsIn)
	}
}

// TestMutualTLS: a server that requires a client certificate accepts the agent's, and the client expiry
// gauge shows it.
func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	srv := startTLSServer(t, mtls(serverTLS(p.server), p.clientCA), nil)
	s := p.clientSettings()
	s.Certificate = &p.client.TLS
	d := newDialer(t, s)
	h := newAgent(t, tlsServer(srv.Addr(), d))
	h.login(t, "alice", "alice-pw")
	if got, want := h.expiry(srv.Addr(), "client"), float64(p.client.Cert.NotAfter.Unix()); got != want {
		t.Fatalf("client expiry gauge %v, want %v", got, want)
	}
	if st, _ := d.State(); !st.ClientExpiry.Equal(p.client.Cert.NotAfter) {
		t.Fatalf("state client expiry %v", st.ClientExpiry)
	}
}

// TestPinMatch: a pin of the leaf's key, or of the CA's, is accepted.
func TestPinMatch(t *testing.T) {
	p := newPKI(t)
	srv := startTLSServer(t, serverTLS(p.server), nil)
	for _, pin := range []string{pinOf(p.server.Cert), pinOf(p.ca.Cert)} {
		s := p.clientSettings()
		s.Pins = []string{pin}
		h := newAgent(t, tlsServer(srv.Addr(), newDialer(t, s)))
		h.login(t, "alice", "alice-pw")
	}
}

// TestUnencryptedFlagOverTLS: inside TLS every packet carries TAC_PLUS_UNENCRYPTED_FLAG (RFC 9887); a reply
// without it is a protocol error, never accepted.
func TestUnencryptedFlagOverTLS(t *testing.T) {
	p := newPKI(t)
	srv := startTLSServer(t, serverTLS(p.server), func(c *tacplustest.Config) {
		c.Faults = tacplustest.Faults{ToggleUnencrypted: tacplustest.Always}
	})
	h := newAgent(t, tlsServer(srv.Addr(), newDialer(t, p.clientSettings())))
	_, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	if err == nil {
		t.Fatal("a reply without the UNENCRYPTED flag over TLS was accepted")
	}
	t.Logf("reply without the flag: %v", err)
	if !errors.Is(err, tacplus.ErrProtocol) && !errors.Is(err, tacplus.ErrBadSecret) {
		t.Fatalf("error %v, want a protocol error", err)
	}
	if got := testutil.ToFloat64(h.Metrics().BadPackets.WithLabelValues(srv.Addr(), "flags")); got < 1 {
		t.Fatalf("bad_packets_total{reason=flags} = %v, want >= 1", got)
	}
	if srv.Stats().AuthenPass == 0 {
		t.Fatal("the server never passed the login: the test did not reach the flag check")
	}
	if srv.Stats().Faults.ToggleUnencrypted < 1 {
		t.Fatalf("fault not fired: %+v", srv.Stats().Faults)
	}
	// And the agent's own packets carried the flag: the server (which checks, like tacquito) took them.
	if srv.Stats().BadPackets != 0 {
		t.Fatalf("server rejected %d of our packets", srv.Stats().BadPackets)
	}
}

// TestResumption: a second connection to the same server resumes the TLS session, and is still verified.
func TestResumption(t *testing.T) {
	p := newPKI(t)
	srv := startTLSServer(t, serverTLS(p.server), nil)
	d := newDialer(t, p.clientSettings())
	h := newAgent(t, tlsServer(srv.Addr(), d))
	h.login(t, "alice", "alice-pw")
	if st, _ := d.State(); st.Resumed {
		t.Fatal("first handshake reported as resumed")
	}
	srv.CloseConnections()
	eventually(t, "the agent sees the close", func() bool {
		return testutil.ToFloat64(h.Metrics().ConnState.WithLabelValues(srv.Addr())) != 2
	})
	h.login(t, "alice", "alice-pw")
	st, _ := d.State()
	if !st.Resumed {
		t.Fatal("second handshake was not resumed")
	}
	if st.PeerIdentity != "DNS:"+serverName {
		t.Fatalf("resumed handshake identity %q: verification must run on resumption too", st.PeerIdentity)
	}
}

// TestRefusalMessages prints what an operator sees for each refusal (go test -v), and checks the message
// never carries key material (there is none over TLS; the password must not appear either).
func TestRefusalMessages(t *testing.T) {
	p := newPKI(t)
	srv := startTLSServer(t, serverTLS(p.ca.MustIssue(testca.Leaf{DNSNames: []string{"other.test"}})), nil)
	h := newAgent(t, tlsServer(srv.Addr(), newDialer(t, p.clientSettings())))
	_, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	if err == nil || strings.Contains(err.Error(), "alice-pw") {
		t.Fatalf("error %v", err)
	}
	t.Logf("wrong name: %v", err)
	if !strings.Contains(err.Error(), "DNS:other.test") || !strings.Contains(err.Error(), serverName) {
		t.Fatalf("message does not say which name was presented and which expected: %v", err)
	}
}
