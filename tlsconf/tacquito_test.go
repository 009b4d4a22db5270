package tlsconf_test

import (
	"crypto/tls"
	"errors"
	"testing"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/internal/tacquitoserver"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tlsconf"
)

// startTacquitoTLS runs tacquito's real server in-process with its own TLS support (RFC 9887).
func startTacquitoTLS(t *testing.T, tc *tls.Config) *tacquitoserver.Server {
	t.Helper()
	s, err := tacquitoserver.Start(tacquitoserver.Config{Key: []byte("tacquito-needs-a-secret"), TLS: tc,
		Users: []tacquitoserver.User{{Name: "alice", Password: "alice-pw", Permit: []string{"show"}}}})
	if err != nil {
		t.Fatalf("tacquitoserver.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("tacquito close: %v", err)
		}
	})
	return s
}

// interop runs login PASS and FAIL, authorization and accounting against tacquito over TLS.
func interop(t *testing.T, h *harness, srv *tacquitoserver.Server) {
	t.Helper()
	h.login(t, "alice", "alice-pw")
	if _, err := h.Authenticate(ctxT(t), pap("alice", "nope"), nil); !errors.Is(err, tacplus.ErrAuthenticationFailed) {
		t.Fatalf("wrong password: %v, want ErrAuthenticationFailed", err)
	}
	ar, err := h.Authorize(ctxT(t), agent.AuthorRequest{User: "alice", Args: []string{"service=shell", "cmd=show", "cmd-arg=version"}})
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	if ar.Status != tacplus.AuthorStatusPassAdd && ar.Status != tacplus.AuthorStatusPassRepl {
		t.Fatalf("authorize status %v", ar.Status)
	}
	if _, err := h.Account(ctxT(t), agent.AcctRequest{Flags: tacplus.AcctFlagStart, User: "alice", Args: []string{"task_id=7", "service=shell"}}); err != nil {
		t.Fatalf("account: %v", err)
	}
	eventually(t, "tacquito recorded the accounting record", func() bool { return len(srv.Accounting()) == 1 })
}

// TestTacquitoTLS: interop with tacquito's TLS server, server authentication only.
func TestTacquitoTLS(t *testing.T) {
	p := newPKI(t)
	srv := startTacquitoTLS(t, serverTLS(p.server))
	d := newDialer(t, p.clientSettings())
	h := newAgent(t, tlsServer(srv.Addr(), d))
	interop(t, h, srv)
	if st, _ := d.State(); st.Version != "TLS 1.3" || st.PeerIdentity != "DNS:"+serverName {
		t.Fatalf("state %+v", st)
	}
}

// TestTacquitoMutualTLS: interop with tacquito requiring a client certificate; without one the agent is
// refused and nothing passes.
func TestTacquitoMutualTLS(t *testing.T) {
	p := newPKI(t)
	srv := startTacquitoTLS(t, mtls(serverTLS(p.server), p.clientCA))
	s := p.clientSettings()
	s.Certificate = &p.client.TLS
	h := newAgent(t, tlsServer(srv.Addr(), newDialer(t, s)))
	interop(t, h, srv)

	h2 := newAgent(t, tlsServer(srv.Addr(), newDialer(t, p.clientSettings())))
	_, err := h2.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	if err == nil {
		t.Fatal("login without a client certificate passed against a server that requires one")
	}
	if got := h2.failures(srv.Addr(), tlsconf.ReasonCertRequired); got < 1 {
		t.Fatalf("client_cert_required not counted (%v): %v", got, err)
	}
}

// TestTacquitoRefusesUnflaggedPackets documents the other direction of the flag rule: tacquito (RFC 9887
// section 5.2) answers a packet without TAC_PLUS_UNENCRYPTED_FLAG over TLS with an error. An agent
// configured with a key on a TLS server would send such packets; config refuses that combination, and
// here the agent with a keyed codec gets no PASS.
func TestTacquitoRefusesUnflaggedPackets(t *testing.T) {
	p := newPKI(t)
	srv := startTacquitoTLS(t, serverTLS(p.server))
	d := newDialer(t, p.clientSettings())
	keyed := agent.Server{Addr: srv.Addr(), Key: []byte("tacquito-needs-a-secret"), Dial: d.Dial,
		Timeout: tlsServer("", d).Timeout, DialTimeout: tlsServer("", d).DialTimeout}
	h := newAgent(t, keyed)
	r, err := h.Authenticate(ctxT(t), pap("alice", "alice-pw"), nil)
	if err == nil && r.Status == tacplus.AuthenStatusPass {
		t.Fatal("an obfuscated packet over TLS passed")
	}
	t.Logf("obfuscated packet over TLS: %v", err)
}
