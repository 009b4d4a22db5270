package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// DefaultPort is the TCP port of TACACS+ over TLS (RFC 9887 section 7, "tacacss").
const DefaultPort = "300"

// maxPEMFile bounds a CA bundle, certificate or key file.
const maxPEMFile = 1 << 20

// Settings are one server's TLS settings.
type Settings struct {
	// ServerName is the reference identity (RFC 9525) and the SNI; "" uses the host of the server's
	// address. An IP address is matched against iPAddress SANs and sends no SNI.
	ServerName string
	// CAFile is a PEM bundle of the CAs that may sign the server's certificate. Only these are trusted
	// (never the system roots). RootCAs replaces it in memory (tests, the demo).
	CAFile  string
	RootCAs *x509.CertPool
	// CertFile and KeyFile are the client certificate (chain) and key, PEM, for mutual TLS; both or
	// neither. Certificate replaces them in memory.
	CertFile, KeyFile string
	Certificate       *tls.Certificate
	// Pins are SPKI pins, "sha256/BASE64" (the sha256 of a certificate's SubjectPublicKeyInfo, as curl's
	// --pinnedpubkey). When set, one certificate of the verified chain must match one pin.
	Pins []string
	// Coalesce lets several TACACS+ packets share a TLS record. Off by default: some servers read only
	// the first packet of each record (docs/tls.md).
	Coalesce bool
	// Now is the clock for certificate validity (tests); default time.Now.
	Now func() time.Time
}

// Store holds the loaded trust anchors, client certificate and pins of one server, and reloads the files
// when they change. Safe for concurrent use.
type Store struct {
	s    Settings
	pins [][sha256.Size]byte

	mu     sync.RWMutex
	roots  *x509.CertPool
	cert   *tls.Certificate
	stamps []stamp // of CAFile, CertFile, KeyFile as last loaded
}

type stamp struct {
	path  string
	mod   time.Time
	size  int64
	inode uint64
}

// NewStore checks s and loads its files. Errors name the file and the problem, never key material.
func NewStore(s Settings) (*Store, error) {
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.ServerName != "" {
		if _, err := ParseReferenceID(s.ServerName); err != nil {
			return nil, err
		}
	}
	if s.CAFile == "" && s.RootCAs == nil {
		return nil, errors.New("a CA bundle (ca_file) is required: the server's certificate is verified against it alone")
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return nil, errors.New("cert_file and key_file go together (both for mutual TLS, or neither)")
	}
	st := &Store{s: s}
	for _, p := range s.Pins {
		pin, err := ParsePin(p)
		if err != nil {
			return nil, err
		}
		st.pins = append(st.pins, pin)
	}
	if err := st.Reload(); err != nil {
		return nil, err
	}
	return st, nil
}

// ParsePin parses "sha256/BASE64" (also "sha256//BASE64").
func ParsePin(p string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	rest, ok := strings.CutPrefix(p, "sha256/")
	if !ok {
		return out, fmt.Errorf("pin %q: want sha256/BASE64 (the sha256 of a SubjectPublicKeyInfo)", p)
	}
	// curl writes "sha256//BASE64"; a base64 value may itself start with '/', so trim only the extra one
	// (the base64 of 32 bytes is 44 characters).
	if len(rest) == 45 && rest[0] == '/' {
		rest = rest[1:]
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(b) != sha256.Size {
		return out, fmt.Errorf("pin %q: not the base64 of a 32-byte sha256", p)
	}
	copy(out[:], b)
	return out, nil
}

// PinOf returns the pin ("sha256/BASE64") of a certificate's public key.
func PinOf(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256/" + base64.StdEncoding.EncodeToString(sum[:])
}

// Reload reads the files again. On error the previous material stays in use.
func (st *Store) Reload() error {
	roots, cert := st.s.RootCAs, st.s.Certificate
	var stamps []stamp
	if st.s.CAFile != "" {
		data, sp, err := readPEM(st.s.CAFile)
		if err != nil {
			return fmt.Errorf("ca_file: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(data) {
			return fmt.Errorf("ca_file %s: no PEM certificate in it", st.s.CAFile)
		}
		stamps = append(stamps, sp)
	}
	if st.s.CertFile != "" {
		cdata, csp, err := readPEM(st.s.CertFile)
		if err != nil {
			return fmt.Errorf("cert_file: %w", err)
		}
		kdata, ksp, err := readPEM(st.s.KeyFile)
		if err != nil {
			return fmt.Errorf("key_file: %w", err)
		}
		c, err := tls.X509KeyPair(cdata, kdata)
		clear(kdata)
		if err != nil {
			// crypto/tls's messages name the problem (no key, mismatch), not the key's bytes.
			return fmt.Errorf("cert_file %s / key_file %s: %w", st.s.CertFile, st.s.KeyFile, err)
		}
		cert = &c
		stamps = append(stamps, csp, ksp)
	}
	if cert != nil && cert.Leaf == nil && len(cert.Certificate) > 0 {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return fmt.Errorf("client certificate: %w", err)
		}
		cert.Leaf = leaf
	}
	st.mu.Lock()
	st.roots, st.cert, st.stamps = roots, cert, stamps
	st.mu.Unlock()
	return nil
}

// Changed reports whether a file changed since it was loaded (modification time, size or inode: a
// rename-into-place rotation changes the inode).
func (st *Store) Changed() bool {
	st.mu.RLock()
	stamps := st.stamps
	st.mu.RUnlock()
	for _, sp := range stamps {
		now, err := statOf(sp.path)
		if err != nil || now != sp {
			return true
		}
	}
	return false
}

// ReloadIfChanged reloads when a file changed. It reports whether it reloaded, and the error of a
// reload that failed (the old material stays).
func (st *Store) ReloadIfChanged() (bool, error) {
	if !st.Changed() {
		return false, nil
	}
	return true, st.Reload()
}

// Roots returns the trust anchors in use.
func (st *Store) Roots() *x509.CertPool {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.roots
}

// Certificate returns the client certificate in use, or nil.
func (st *Store) Certificate() *tls.Certificate {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.cert
}

// Settings returns the settings the store was made with.
func (st *Store) Settings() Settings { return st.s }

func (st *Store) pinned(chains [][]*x509.Certificate) bool {
	if len(st.pins) == 0 {
		return true
	}
	for _, chain := range chains {
		for _, c := range chain {
			sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
			for _, p := range st.pins {
				if p == sum {
					return true
				}
			}
		}
	}
	return false
}

func readPEM(path string) ([]byte, stamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, stamp{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, stamp{}, err
	}
	if !fi.Mode().IsRegular() {
		return nil, stamp{}, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > maxPEMFile {
		return nil, stamp{}, fmt.Errorf("%s is larger than %d bytes", path, maxPEMFile)
	}
	data := make([]byte, fi.Size())
	n, err := f.ReadAt(data, 0)
	if err != nil && n != len(data) {
		return nil, stamp{}, fmt.Errorf("reading %s: %w", path, err)
	}
	sp, err := statOf(path)
	return data[:n], sp, err
}
