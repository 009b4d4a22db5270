package main

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tlsconf"
	"github.com/tacagent/tacagent/tlsconf/testca"
)

// papOverTLS dials addr with d and runs one PAP login with the UNENCRYPTED flag (RFC 9887).
func papOverTLS(t *testing.T, d *tlsconf.Dialer, addr string) (tacplus.AuthenStatus, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := d.Dial(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	codec, err := tacplus.NewCodec(tacplus.Options{Unencrypted: true, AllowUnencrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := codec.Marshal(tacplus.Header{SessionID: 9, SeqNo: 1}, &tacplus.AuthenStart{Action: tacplus.ActionLogin, PrivLvl: 1,
		Type: tacplus.AuthenTypePAP, Service: tacplus.ServiceLogin, User: "alice", Data: "alice-pw"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(pkt); err != nil {
		return 0, err
	}
	h, body, err := codec.NewReader(c).Next()
	if err != nil {
		return 0, err
	}
	var r tacplus.AuthenReply
	if err := codec.DecodeBody(h, body, &r); err != nil {
		return 0, err
	}
	return r.Status, nil
}

// TestRunTLS: the binary serves TACACS+ over TLS 1.3; a certificate renamed into place is served at the
// next handshake (rotation under a running server); -tls12-only is refused by an RFC 9887 client.
func TestRunTLS(t *testing.T) {
	ca, err := testca.New("testserver CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first := ca.MustIssue(testca.Leaf{DNSNames: []string{"tacacs.test"}})
	certFile, keyFile, err := first.WriteFiles(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, "cfg.yaml", testConfig)
	start := func(extra ...string) (string, func()) {
		stdoutR, stdoutW := io.Pipe()
		var stderr syncBuffer
		sig := make(chan os.Signal, 1)
		exited := make(chan int, 1)
		args := append([]string{"-config", cfg, "-tls-cert", certFile, "-tls-key", keyFile}, extra...)
		go func() { exited <- run(args, env(map[string]string{defaultKeyEnv: testKey}), stdoutW, &stderr, sig) }()
		addr := readLine(t, stdoutR, exited)
		return addr, func() {
			sig <- os.Interrupt
			if code := <-exited; code != exitOK {
				t.Errorf("exit %d: %s", code, stderr.String())
			}
			stdoutR.Close()
		}
	}
	addr, stop := start()
	defer stop()
	d, err := tlsconf.New(tlsconf.Settings{ServerName: "tacacs.test", RootCAs: ca.Pool()}, "")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := papOverTLS(t, d, addr); err != nil || st != tacplus.AuthenStatusPass {
		t.Fatalf("PAP over TLS: %v %v", st, err)
	}
	if s, _ := d.State(); !s.PeerExpiry.Equal(first.Cert.NotAfter) {
		t.Fatalf("first certificate not served: %+v", s)
	}
	second := ca.MustIssue(testca.Leaf{DNSNames: []string{"tacacs.test"}, NotAfter: time.Now().Add(40 * 24 * time.Hour)})
	if _, _, err := second.WriteFiles(dir, "server"); err != nil {
		t.Fatal(err)
	}
	d2, _ := tlsconf.New(tlsconf.Settings{ServerName: "tacacs.test", RootCAs: ca.Pool()}, "") // no ticket to resume
	if st, err := papOverTLS(t, d2, addr); err != nil || st != tacplus.AuthenStatusPass {
		t.Fatalf("PAP over TLS after rotation: %v %v", st, err)
	}
	if s, _ := d2.State(); !s.PeerExpiry.Equal(second.Cert.NotAfter) {
		t.Fatalf("rotated certificate not served: %+v", s)
	}

	addr12, stop12 := start("-tls12-only")
	defer stop12()
	_, err = papOverTLS(t, d2, addr12)
	var he *tlsconf.HandshakeError
	if !errors.As(err, &he) || he.Reason != tlsconf.ReasonVersion {
		t.Fatalf("TLS 1.2-only server: %v, want a protocol_version refusal", err)
	}
}
