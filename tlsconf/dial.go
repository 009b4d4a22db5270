package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tacagent/tacagent/metrics"
)

// sessionCacheSize is the number of TLS session tickets kept per server (resumption).
const sessionCacheSize = 32

// State is what the last verified handshake with a server established (for status and logs).
type State struct {
	Version      string    // "TLS 1.3"
	PeerIdentity string    // the SAN that matched: "DNS:tacacs.example.net" or "IP:192.0.2.1"
	PeerExpiry   time.Time // notAfter of the server's leaf certificate
	ClientExpiry time.Time // notAfter of our client certificate; zero without mTLS
	Resumed      bool      // the session was resumed from a ticket
	At           time.Time
}

// Dialer opens TLS 1.3 connections to one server. Its Dial method has the signature of
// connection.Config.Dial and agent.Server.Dial.
type Dialer struct {
	store    *Store
	ref      ReferenceID // fixed by ServerName; zero: from the address
	hasRef   bool
	coalesce bool
	net      net.Dialer
	// cache holds the session tickets; it is replaced when the store reloads, so that new material (a
	// rotated client certificate, a new CA bundle) takes effect with a full handshake rather than riding
	// on a resumed session, which would present neither.
	cache atomic.Pointer[sessionCache]
	state atomic.Pointer[State]
}

// NewDialer makes a dialer over st. sourceAddr, when set, is the local IP to connect from.
func NewDialer(st *Store, sourceAddr string) (*Dialer, error) {
	d := &Dialer{store: st, coalesce: st.s.Coalesce}
	d.cache.Store(&sessionCache{tls.NewLRUClientSessionCache(sessionCacheSize)})
	if st.s.ServerName != "" {
		ref, err := ParseReferenceID(st.s.ServerName)
		if err != nil {
			return nil, err
		}
		d.ref, d.hasRef = ref, true
	}
	if sourceAddr != "" {
		ip := net.ParseIP(sourceAddr)
		if ip == nil {
			return nil, fmt.Errorf("source address %q is not an IP address", sourceAddr)
		}
		d.net.LocalAddr = &net.TCPAddr{IP: ip}
	}
	return d, nil
}

// New is NewStore then NewDialer.
func New(s Settings, sourceAddr string) (*Dialer, error) {
	st, err := NewStore(s)
	if err != nil {
		return nil, err
	}
	return NewDialer(st, sourceAddr)
}

// Store returns the dialer's certificate store.
func (d *Dialer) Store() *Store { return d.store }

// State returns what the last verified handshake established, or false before the first.
func (d *Dialer) State() (State, bool) {
	p := d.state.Load()
	if p == nil {
		return State{}, false
	}
	return *p, true
}

// Dial connects to addr and completes a verified TLS 1.3 handshake within ctx (the connection actor
// bounds it by the connect timeout). Certificate files that changed since they were loaded are reloaded
// first. Any failure is returned: a *HandshakeError for TLS, the net error for TCP; never a plaintext
// connection.
func (d *Dialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	m := metrics.FromContext(ctx)
	if reloaded, err := d.store.ReloadIfChanged(); reloaded {
		if err == nil {
			d.cache.Store(&sessionCache{tls.NewLRUClientSessionCache(sessionCacheSize)})
		}
		if m != nil {
			if err != nil {
				m.TLSReload("error")
			} else {
				m.TLSReload("ok")
			}
		}
	}
	ref := d.ref
	if !d.hasRef {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if ref, err = ParseReferenceID(host); err != nil {
			return nil, err
		}
	}
	cert := d.store.Certificate()
	if cert != nil && cert.Leaf != nil && m != nil {
		m.TLSExpiry("client", float64(cert.Leaf.NotAfter.Unix()))
	}
	raw, err := d.net.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	bc := &batchConn{Conn: raw}
	var matched string
	var peerExpiry time.Time
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		MaxVersion:         tls.VersionTLS13,
		ServerName:         ref.DNS, // empty for an IP reference: no SNI (RFC 6066 forbids IP literals)
		ClientSessionCache: d.cache.Load().c,
		// Chain and identity are checked by verify (RFC 9525 rules, no CN fallback, pins), on full and
		// resumed handshakes alike; crypto/tls's own hostname check would accept what we must not.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, exp, err := d.verify(cs, ref)
			matched, peerExpiry = id, exp
			return err
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert == nil {
				return &tls.Certificate{}, nil // none: a server that requires one refuses
			}
			return cert, nil
		},
	}
	// No session cache key collisions between servers that share a name: the cache is per dialer.
	if ref.IP.IsValid() {
		cfg.ServerName = ""
	}
	tc := tls.Client(bc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		reason := classify(ctx, err)
		if m != nil {
			m.TLSHandshakeFailed(reason)
		}
		return nil, &HandshakeError{Server: addr, Reason: reason, Err: err}
	}
	cs := tc.ConnectionState()
	if cs.Version != tls.VersionTLS13 { // MinVersion already forbids it; never trust one layer alone
		raw.Close()
		if m != nil {
			m.TLSHandshakeFailed(ReasonVersion)
		}
		return nil, &HandshakeError{Server: addr, Reason: ReasonVersion, Err: fmt.Errorf("negotiated %s", tls.VersionName(cs.Version))}
	}
	st := &State{Version: tls.VersionName(cs.Version), PeerIdentity: matched, PeerExpiry: peerExpiry,
		Resumed: cs.DidResume, At: time.Now()}
	if cert != nil && cert.Leaf != nil {
		st.ClientExpiry = cert.Leaf.NotAfter
	}
	d.state.Store(st)
	if m != nil {
		m.TLSHandshake()
		m.TLSExpiry("server", float64(peerExpiry.Unix()))
	}
	return &recordConn{Conn: tc, tc: tc, bc: bc, coalesce: d.coalesce, addr: addr, m: m}, nil
}

// verify checks the server's chain against the store's roots, its identity against ref, and the pins.
// It returns the matched identifier and the leaf's notAfter.
func (d *Dialer) verify(cs tls.ConnectionState, ref ReferenceID) (string, time.Time, error) {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return "", time.Time{}, &verifyError{ReasonBadCertificate, errors.New("the server sent no certificate")}
	}
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	now := d.store.s.Now()
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: d.store.Roots(), Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return "", leaf.NotAfter, chainError(err, certs, now)
	}
	if err := VerifyIdentity(leaf, ref); err != nil {
		return "", leaf.NotAfter, &verifyError{ReasonWrongName, err}
	}
	if !d.store.pinned(chains) {
		return "", leaf.NotAfter, &verifyError{ReasonPinMismatch,
			fmt.Errorf("no certificate of the verified chain matches a configured pin (leaf key is %s)", PinOf(leaf))}
	}
	return matchedID(leaf, ref), leaf.NotAfter, nil
}

func matchedID(leaf *x509.Certificate, ref ReferenceID) string {
	if ref.IP.IsValid() {
		return "IP:" + ref.IP.String()
	}
	for _, n := range leaf.DNSNames {
		if MatchDNSID(n, ref.DNS) {
			return "DNS:" + n
		}
	}
	return ""
}

func chainError(err error, certs []*x509.Certificate, now time.Time) *verifyError {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Reason == x509.Expired {
		for _, c := range certs {
			if now.Before(c.NotBefore) {
				return &verifyError{ReasonNotYetValid, fmt.Errorf("certificate %q is not valid before %s", c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))}
			}
		}
		for _, c := range certs {
			if now.After(c.NotAfter) {
				return &verifyError{ReasonExpired, fmt.Errorf("certificate %q expired at %s", c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))}
			}
		}
		return &verifyError{ReasonExpired, err}
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return &verifyError{ReasonUnknownCA, fmt.Errorf("certificate is not signed by a CA of ca_file: %w", err)}
	}
	return &verifyError{ReasonBadCertificate, err}
}

type sessionCache struct{ c tls.ClientSessionCache }

// recordConn is the TLS connection the connection actor sees. Its Write puts each TACACS+ packet of the
// buffer in a TLS record of its own (unless coalescing), and batches those records into one system call.
type recordConn struct {
	net.Conn
	tc       *tls.Conn
	bc       *batchConn
	coalesce bool
	addr     string
	m        *metrics.Server
	readOnce bool
}

// headerLen is the TACACS+ header size (RFC 8907 section 4.1); the body length is its last 4 bytes.
const headerLen = 12

func (c *recordConn) Write(b []byte) (int, error) {
	if c.coalesce {
		return c.tc.Write(b)
	}
	c.bc.begin()
	n := 0
	var err error
	for n < len(b) && err == nil {
		end := len(b)
		if rest := b[n:]; len(rest) >= headerLen {
			if l := int(binary.BigEndian.Uint32(rest[8:12])); l <= len(rest)-headerLen {
				end = n + headerLen + l
			}
		}
		var w int
		w, err = c.tc.Write(b[n:end])
		n += w
	}
	if ferr := c.bc.flush(); err == nil {
		err = ferr
	}
	return n, err
}

// Read reports a TLS alert that ends the connection before any data (a TLS 1.3 server refusing the client
// certificate after the handshake) as a HandshakeError with its reason, and counts it.
func (c *recordConn) Read(b []byte) (int, error) {
	n, err := c.tc.Read(b)
	if n > 0 {
		c.readOnce = true
	}
	if err != nil && !c.readOnce {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "remote error" {
			reason := classify(context.Background(), err)
			if c.m != nil {
				c.m.TLSHandshakeFailed(reason)
			}
			c.readOnce = true
			return n, &HandshakeError{Server: c.addr, Reason: reason, Err: err}
		}
	}
	return n, err
}

// batchConn is the TCP connection under the TLS layer. Between begin and flush it collects what the TLS
// layer writes (one record per packet) and sends it in one system call.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      []byte
}

func (b *batchConn) begin() {
	b.mu.Lock()
	b.batching = true
	b.mu.Unlock()
}

func (b *batchConn) flush() error {
	b.mu.Lock()
	b.batching = false
	buf := b.buf
	b.buf = nil
	b.mu.Unlock()
	if len(buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(buf)
	b.mu.Lock()
	if b.buf == nil {
		b.buf = buf[:0] // reuse unless something else appended meanwhile
	}
	b.mu.Unlock()
	return err
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.batching {
		b.buf = append(b.buf, p...)
		b.mu.Unlock()
		return len(p), nil
	}
	b.mu.Unlock()
	return b.Conn.Write(p)
}
