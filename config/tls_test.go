package config

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
	"github.com/tacagent/tacagent/tlsconf/testca"
)

// tlsFiles writes a CA and a client pair to a temp dir and returns their paths.
func tlsFiles(t *testing.T) (ca *testca.CA, caFile, certFile, keyFile string) {
	t.Helper()
	ca, err := testca.New("config test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile, err = ca.WriteFile(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err = ca.MustIssue(testca.Leaf{Client: true, DNSNames: []string{"agent.test"}}).WriteFiles(dir, "client")
	if err != nil {
		t.Fatal(err)
	}
	return ca, caFile, certFile, keyFile
}

func TestTLSConfig(t *testing.T) {
	_, caFile, certFile, keyFile := tlsFiles(t)
	r := strings.NewReplacer("CAFILE", caFile, "CERTFILE", certFile, "KEYFILE_TLS", keyFile)
	good := r.Replace(`
require_tls: true
servers:
  - address: tacacs.example.net
    tls:
      enable: true
      ca_file: CAFILE
      cert_file: CERTFILE
      key_file: KEYFILE_TLS
  - address: 192.0.2.7:4949
    tls: {enable: true, ca_file: CAFILE, server_name: tacacs2.example.net, pins: ["sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="], coalesce: true}
`)
	c := mustParse(t, good)
	if c.Servers[0].Address != "tacacs.example.net:300" {
		t.Fatalf("TLS default port: address %q, want :300", c.Servers[0].Address)
	}
	if c.Servers[1].Address != "192.0.2.7:4949" {
		t.Fatalf("explicit port changed: %q", c.Servers[1].Address)
	}
	ac, err := c.Agent()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ac.Servers {
		if s.Dial == nil || !s.Unencrypted || !s.AllowUnencrypted || len(s.Key) != 0 {
			t.Fatalf("TLS server %s mapped to %+v: want a TLS dialer, UNENCRYPTED, no key", s.Addr, s)
		}
	}

	cases := []struct{ name, doc, field, msg string }{
		{"require_tls refuses plaintext", `
require_tls: true
servers:
  - address: 192.0.2.1
    key_file: KEYFILE`, "servers[0].tls", "require_tls"},
		{"key with tls", `
servers:
  - address: 192.0.2.1
    key_file: KEYFILE
    tls: {enable: true, ca_file: CAFILE}`, "servers[0].key_file", "takes no shared key"},
		{"unencrypted with tls", `
servers:
  - address: 192.0.2.1
    unencrypted: true
    allow_unencrypted: true
    tls: {enable: true, ca_file: CAFILE}`, "servers[0].unencrypted", "do not apply"},
		{"no ca", `
servers:
  - address: 192.0.2.1
    tls: {enable: true}`, "servers[0].tls.ca_file", "CA bundle is required"},
		{"relative ca", `
servers:
  - address: 192.0.2.1
    tls: {enable: true, ca_file: ca.pem}`, "servers[0].tls.ca_file", "absolute"},
		{"tls settings without enable", `
servers:
  - address: 192.0.2.1
    key_file: KEYFILE
    tls: {ca_file: CAFILE}`, "servers[0].tls.enable", "not true"},
		{"cert without key", `
servers:
  - address: 192.0.2.1
    tls: {enable: true, ca_file: CAFILE, cert_file: CERTFILE}`, "servers[0].tls", "go together"},
		{"bad pin", `
servers:
  - address: 192.0.2.1
    tls: {enable: true, ca_file: CAFILE, pins: [abc]}`, "servers[0].tls", "sha256/"},
		{"wildcard server name", `
servers:
  - address: 192.0.2.1
    tls: {enable: true, ca_file: CAFILE, server_name: "*.example.net"}`, "servers[0].tls", "not a DNS label"},
		{"unknown tls field", `
servers:
  - address: 192.0.2.1
    tls: {enable: true, ca_file: CAFILE, verify: false}`, "servers[0].tls.verify", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, r.Replace(tc.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T %v", err, err)
			}
			for _, fe := range errs {
				if fe.Field == tc.field && strings.Contains(fe.Error(), tc.msg) {
					return
				}
			}
			t.Fatalf("no problem at %s mentioning %q in:\n%v", tc.field, tc.msg, err)
		})
	}
}

// TestTLSKeyFileMode: a client key readable by every user is refused.
func TestTLSKeyFileMode(t *testing.T) {
	_, caFile, certFile, keyFile := tlsFiles(t)
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	doc := "servers:\n  - address: 192.0.2.1\n    tls: {enable: true, ca_file: " + caFile + ", cert_file: " + certFile + ", key_file: " + keyFile + "}\n"
	if _, err := parse(t, doc); err == nil || !strings.Contains(err.Error(), "readable by every user") {
		t.Fatalf("world-readable key: %v", err)
	}
}

// TestTLSDiff: a change of the tls block is a server change (the agent is replaced on reload).
func TestTLSDiff(t *testing.T) {
	_, caFile, _, _ := tlsFiles(t)
	a := mustParse(t, "servers:\n  - address: 192.0.2.1\n    tls: {enable: true, ca_file: "+caFile+"}\n")
	b := mustParse(t, "servers:\n  - address: 192.0.2.1\n    tls: {enable: true, ca_file: "+caFile+", coalesce: true}\n")
	ch := Diff(a, b)
	if len(ch.Changed) != 1 || !strings.Contains(strings.Join(ch.Changed[0].Fields, ","), "tls") {
		t.Fatalf("diff %v, want the tls field changed", ch)
	}
}

// TestTLSConfigRoundTrip: a configuration file's TLS server, through Agent, logs in over TLS 1.3.
func TestTLSConfigRoundTrip(t *testing.T) {
	ca, caFile, _, _ := tlsFiles(t)
	cert := ca.MustIssue(testca.Leaf{DNSNames: []string{"tacacs.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	srv, err := tacplustest.Start(tacplustest.Config{Key: []byte("unused"), SingleConnect: true, KeepOpen: true,
		Users: map[string]tacplustest.User{"alice": {Password: "pw"}},
		TLS:   &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert.TLS}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	doc := "servers:\n  - address: " + srv.Addr() + "\n    tls: {enable: true, server_name: tacacs.test, ca_file: " + caFile + "}\n"
	c := mustParse(t, doc)
	ac, err := c.Agent()
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(ac)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Close(ctx)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := agent.AuthenRequest{User: "alice", Type: tacplus.AuthenTypePAP}
	// Password is a string here and a []byte on branch wt/core: set it either way.
	if f := reflect.ValueOf(&req).Elem().FieldByName("Password"); f.Kind() == reflect.String {
		f.SetString("pw")
	} else {
		f.SetBytes([]byte("pw"))
	}
	r, err := a.Authenticate(ctx, req, nil)
	if err != nil || r.Status != tacplus.AuthenStatusPass {
		t.Fatalf("login over TLS from config: %v %v", r, err)
	}
	// Status shows what the handshake established.
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts := st.Servers[0].TLS
	if ts == nil || ts.Version != "TLS 1.3" || ts.PeerIdentity != "DNS:tacacs.test" || !ts.PeerExpiry.Equal(cert.Cert.NotAfter) {
		t.Fatalf("status TLS %+v, want TLS 1.3 with DNS:tacacs.test expiring %v", ts, cert.Cert.NotAfter)
	}
}

// TestTLSDefaultPort: 300 for a TLS server without a port, whatever the address form; an explicit port stays.
func TestTLSDefaultPort(t *testing.T) {
	_, caFile, _, _ := tlsFiles(t)
	for in, want := range map[string]string{
		"tacacs.example.net": "tacacs.example.net:300", "192.0.2.1": "192.0.2.1:300", "2001:db8::1": "[2001:db8::1]:300",
		"[2001:db8::1]": "[2001:db8::1]:300", "192.0.2.1:49": "192.0.2.1:49", "[2001:db8::1]:4949": "[2001:db8::1]:4949",
	} {
		c := mustParse(t, "servers:\n  - address: \""+in+"\"\n    tls: {enable: true, ca_file: "+caFile+"}\n")
		if got := c.Servers[0].Address; got != want {
			t.Errorf("address %q with TLS: %q, want %q", in, got, want)
		}
	}
	c := mustParse(t, "servers:\n  - address: 192.0.2.1\n    key_file: KEYFILE\n")
	if got := c.Servers[0].Address; got != "192.0.2.1:49" {
		t.Errorf("plaintext default port: %q", got)
	}
}
