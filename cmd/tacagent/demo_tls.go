package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/tacagent/tacagent/agent"
	"github.com/tacagent/tacagent/tlsconf"
	"github.com/tacagent/tacagent/tlsconf/testca"
)

// demoServerName is the identity of the demo server's certificate (and the agent's reference identity).
const demoServerName = "tacacs.demo.invalid"

// demoTLS is the demo's TACACS+ over TLS 1.3 setup (RFC 9887): a throwaway CA made in memory, a server
// certificate for demoServerName and 127.0.0.1, and the agent's verifying dialer trusting that CA alone.
type demoTLS struct {
	server *tls.Config
	dialer *tlsconf.Dialer
}

func newDemoTLS() (*demoTLS, error) {
	ca, err := testca.New("tacagent demo CA (in memory, this run only)")
	if err != nil {
		return nil, err
	}
	cert, err := ca.Issue(testca.Leaf{CommonName: demoServerName, DNSNames: []string{demoServerName},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, NotAfter: time.Now().Add(24 * time.Hour)})
	if err != nil {
		return nil, err
	}
	d, err := tlsconf.New(tlsconf.Settings{ServerName: demoServerName, RootCAs: ca.Pool()}, "")
	if err != nil {
		return nil, err
	}
	return &demoTLS{server: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert.TLS}}, dialer: d}, nil
}

// agentServer is the agent's view of the demo server at addr: no key, UNENCRYPTED inside TLS.
func (t *demoTLS) agentServer(addr string) agent.Server {
	return agent.Server{Addr: addr, Unencrypted: true, AllowUnencrypted: true, Dial: t.dialer.Dial}
}

// describe says what the last handshake verified.
func (t *demoTLS) describe() (string, bool) {
	st, ok := t.dialer.State()
	if !ok {
		return "no TLS handshake happened", false
	}
	return fmt.Sprintf("%s with the server; verified identity %s (subjectAltName, RFC 9525) signed by the in-memory CA; server certificate valid until %s",
		st.Version, st.PeerIdentity, st.PeerExpiry.UTC().Format(time.RFC3339)), st.Version == "TLS 1.3" && st.PeerIdentity == "DNS:"+demoServerName
}
