package tlsconf_test

import (
	"crypto/tls"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tacagent/tacagent/tlsconf"
	"github.com/tacagent/tacagent/tlsconf/testca"
)

// seenSerials records the serials of the client certificates a server verified.
type seenSerials struct {
	mu   sync.Mutex
	last *big.Int
}

func (s *seenSerials) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) > 0 {
		s.mu.Lock()
		s.last = cs.PeerCertificates[0].SerialNumber
		s.mu.Unlock()
	}
	return nil
}

func (s *seenSerials) get() *big.Int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// TestReloadClientCertificate: the client certificate is rotated on disk (rename into place) while a
// session is in flight; the session completes, the next connection presents the new certificate, the
// expiry gauge follows, and a broken file later keeps the last good certificate in use.
func TestReloadClientCertificate(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	caFile, err := p.ca.WriteFile(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := p.client.WriteFiles(dir, "client")
	if err != nil {
		t.Fatal(err)
	}
	seen := &seenSerials{}
	tc := mtls(serverTLS(p.server), p.clientCA)
	tc.VerifyConnection = seen.verify
	srv := startTLSServer(t, tc, nil)
	d := newDialer(t, tlsconf.Settings{ServerName: serverName, CAFile: caFile, CertFile: certFile, KeyFile: keyFile})
	h := newAgent(t, tlsServer(srv.Addr(), d))
	h.login(t, "alice", "alice-pw")
	if seen.get().Cmp(p.client.Cert.SerialNumber) != 0 {
		t.Fatal("server did not see the first client certificate")
	}

	// A slow login is in flight on the open connection while the files rotate.
	done := make(chan error, 1)
	go func() {
		_, err := h.Authenticate(ctxT(t), pap("slow", "slow-pw"), nil)
		done <- err
	}()
	eventually(t, "the slow login reached the server", func() bool { return srv.Stats().Sessions >= 2 })
	next := p.clientCA.MustIssue(testca.Leaf{DNSNames: []string{"agent.test"}, Client: true, NotAfter: time.Now().Add(90 * 24 * time.Hour)})
	if _, _, err := next.WriteFiles(dir, "client"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a session in flight during the rotation failed: %v", err)
	}

	srv.CloseConnections()
	eventually(t, "a new connection with the new certificate", func() bool {
		if _, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil); err != nil {
			return false
		}
		return seen.get().Cmp(next.Cert.SerialNumber) == 0
	})
	if got, want := h.expiry(srv.Addr(), "client"), float64(next.Cert.NotAfter.Unix()); got != want {
		t.Fatalf("client expiry gauge %v, want the new certificate's %v", got, want)
	}
	if got := testutil.ToFloat64(h.Metrics().TLS.Reloads.WithLabelValues(srv.Addr(), "ok")); got < 1 {
		t.Fatalf("reloads{ok} = %v", got)
	}

	// A broken rotation (half-written key) is refused and the last good pair stays in use.
	if err := os.WriteFile(filepath.Join(dir, "client.key.tmp"), []byte("-----BEGIN PRIVATE KEY-----\ngarbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "client.key.tmp"), keyFile); err != nil {
		t.Fatal(err)
	}
	srv.CloseConnections()
	eventually(t, "login with the last good certificate after a broken rotation", func() bool {
		_, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
		return err == nil
	})
	if got := testutil.ToFloat64(h.Metrics().TLS.Reloads.WithLabelValues(srv.Addr(), "error")); got < 1 {
		t.Fatalf("reloads{error} = %v, want the broken key counted", got)
	}
	if seen.get().Cmp(next.Cert.SerialNumber) != 0 {
		t.Fatal("server saw another certificate than the last good one")
	}
}

// TestReloadCABundle: the server moves to a certificate of a new CA; until the CA bundle on disk has it,
// the server is refused (unknown_ca); once it has, the next connect passes without restarting anything.
func TestReloadCABundle(t *testing.T) {
	p := newPKI(t)
	ca2, err := testca.New("second server CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile, err := p.ca.WriteFile(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	var cur atomic.Pointer[tls.Certificate]
	cur.Store(&p.server.TLS)
	// No tickets: a resumed session would carry the old server certificate, and this test is about the
	// new one meeting the bundle.
	tc := &tls.Config{MinVersion: tls.VersionTLS13, SessionTicketsDisabled: true, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cur.Load(), nil }}
	srv := startTLSServer(t, tc, nil)
	d := newDialer(t, tlsconf.Settings{ServerName: serverName, CAFile: caFile})
	h := newAgent(t, tlsServer(srv.Addr(), d))
	h.login(t, "alice", "alice-pw")

	s2 := ca2.MustIssue(testca.Leaf{DNSNames: []string{serverName}})
	cur.Store(&s2.TLS)
	srv.CloseConnections()
	eventually(t, "the new server certificate is refused as unknown_ca", func() bool {
		h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
		return h.failures(srv.Addr(), tlsconf.ReasonUnknownCA) >= 1
	})
	bundle := append(append([]byte(nil), p.ca.PEM...), ca2.PEM...)
	if err := os.WriteFile(filepath.Join(dir, "ca.tmp"), bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "ca.tmp"), caFile); err != nil {
		t.Fatal(err)
	}
	eventually(t, "login after the CA bundle gained the new CA", func() bool {
		_, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
		return err == nil
	})
	if st, _ := d.State(); !st.PeerExpiry.Equal(s2.Cert.NotAfter) {
		t.Fatalf("state shows expiry %v, want the new certificate's %v", st.PeerExpiry, s2.Cert.NotAfter)
	}
}

// TestStoreErrors: the store refuses incomplete or broken settings with a message naming the field.
func TestStoreErrors(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	caFile, _ := p.ca.WriteFile(dir, "ca")
	certFile, keyFile, _ := p.client.WriteFiles(dir, "client")
	other := p.clientCA.MustIssue(testca.Leaf{Client: true})
	_, otherKey, _ := other.WriteFiles(dir, "other")
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not pem"), 0o600)
	cases := []struct {
		name string
		s    tlsconf.Settings
	}{
		{"no ca", tlsconf.Settings{}},
		{"missing ca file", tlsconf.Settings{CAFile: filepath.Join(dir, "nope.crt")}},
		{"ca file without certificates", tlsconf.Settings{CAFile: junk}},
		{"cert without key", tlsconf.Settings{CAFile: caFile, CertFile: certFile}},
		{"key of another certificate", tlsconf.Settings{CAFile: caFile, CertFile: certFile, KeyFile: otherKey}},
		{"bad pin", tlsconf.Settings{CAFile: caFile, Pins: []string{"sha1/abcd"}}},
		{"short pin", tlsconf.Settings{CAFile: caFile, Pins: []string{"sha256/AAAA"}}},
		{"bad server name", tlsconf.Settings{CAFile: caFile, ServerName: "*.example.net"}},
		{"directory as ca", tlsconf.Settings{CAFile: dir}},
	}
	for _, c := range cases {
		if _, err := tlsconf.NewStore(c.s); err == nil {
			t.Errorf("%s: accepted", c.name)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
	if _, err := tlsconf.NewStore(tlsconf.Settings{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}); err != nil {
		t.Fatalf("good files refused: %v", err)
	}
}
