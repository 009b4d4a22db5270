package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/tacagent/tacagent/agentconfig"
	"github.com/tacagent/tacagent/tlsconf"
)

// DefaultTLSPort is the port of a TLS server whose address has none (RFC 9887 section 7, "tacacss").
const DefaultTLSPort = tlsconf.DefaultPort

// TLS is a server's `tls:` block: TACACS+ over TLS 1.3 (RFC 9887; docs/tls.md).
type TLS struct {
	// Enable turns TLS on. The server then takes no shared key (no obfuscation inside TLS), and its
	// address's default port is 300.
	Enable bool `yaml:"enable"`
	// ServerName is the reference identity checked against the certificate's subjectAltName (RFC 9525)
	// and sent as SNI; default: the address's host.
	ServerName string `yaml:"server_name"`
	// CAFile is the PEM bundle of the CAs trusted to sign this server's certificate (required; the
	// system roots are never used).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate and key for mutual TLS (both or neither).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Pins are optional SPKI pins, "sha256/BASE64"; one certificate of the verified chain must match.
	Pins []string `yaml:"pins"`
	// Coalesce lets several TACACS+ packets share one TLS record; off by default, because some servers
	// read only the first packet of each record.
	Coalesce bool `yaml:"coalesce"`
}

func (t *TLS) any() bool {
	return t.ServerName != "" || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || len(t.Pins) > 0 || t.Coalesce
}

// addressForTLS adds the TLS default port to an address without one, so that normalizeAddress keeps it.
func (s *Server) addressForTLS() string {
	raw := s.Address
	if !s.TLS.Enable || raw == "" {
		return raw
	}
	if _, _, err := net.SplitHostPort(raw); err == nil {
		return raw
	}
	if strings.HasPrefix(raw, "[") && strings.HasSuffix(raw, "]") {
		return raw + ":" + DefaultTLSPort
	}
	if a, err := netip.ParseAddr(raw); err == nil && a.Is6() {
		return "[" + raw + "]:" + DefaultTLSPort
	}
	if strings.Contains(raw, ":") {
		return raw // malformed: normalizeAddress says why
	}
	return raw + ":" + DefaultTLSPort
}

// checkTLS validates every server's tls block and loads its certificates; require_tls refuses plaintext
// servers. Called from validate after the servers' own checks.
func (c *Config) checkTLS(p *problems) {
	for i := range c.Servers {
		s := &c.Servers[i]
		base := index("servers", i)
		s.tlsStore = nil
		if !s.TLS.Enable {
			if s.TLS.any() {
				p.add(base+".tls.enable", "tls settings are given but tls.enable is not true: the server would be reached in plaintext")
			}
			if c.RequireTLS {
				p.add(base+".tls", "require_tls is set and this server (%s) has no TLS: plaintext TACACS+ has no integrity", s.Address)
			}
			continue
		}
		if s.KeyFile != "" || s.KeyEnv != "" || s.keyIs(sourceMemory) {
			p.add(base+".key_file", "a TLS server takes no shared key: RFC 9887 drops obfuscation inside TLS (remove key_file/key_env)")
		}
		if s.Unencrypted || s.AllowUnencrypted {
			p.add(base+".unencrypted", "unencrypted/allow_unencrypted do not apply to a TLS server (inside TLS the UNENCRYPTED flag is always set)")
		}
		for _, f := range []struct{ field, path string }{{"ca_file", s.TLS.CAFile}, {"cert_file", s.TLS.CertFile}, {"key_file", s.TLS.KeyFile}} {
			if f.path != "" && !filepath.IsAbs(f.path) {
				p.add(base+".tls."+f.field, "%q must be an absolute path", f.path)
			}
		}
		if s.TLS.CAFile == "" {
			p.add(base+".tls.ca_file", "a CA bundle is required: the server's certificate is verified against it alone")
			continue
		}
		if kf := s.TLS.KeyFile; kf != "" && !s.AllowInsecureKeyFile {
			if fi, err := os.Stat(kf); err == nil && fi.Mode().Perm()&0o004 != 0 {
				p.add(base+".tls.key_file", "%s is readable by every user (chmod o-r, or allow_insecure_key_file: true)", kf)
			}
		}
		st, err := tlsconf.NewStore(tlsconf.Settings{ServerName: s.TLS.ServerName, CAFile: s.TLS.CAFile,
			CertFile: s.TLS.CertFile, KeyFile: s.TLS.KeyFile, Pins: s.TLS.Pins, Coalesce: s.TLS.Coalesce})
		if err != nil {
			p.add(base+".tls", "%v", err)
			continue
		}
		if s.TLS.ServerName == "" {
			host, _, _ := net.SplitHostPort(s.Address)
			if _, err := tlsconf.ParseReferenceID(host); err != nil {
				p.add(base+".tls.server_name", "the address's host is not a usable identity (%v); set server_name", err)
				continue
			}
		}
		s.tlsStore = st
	}
}

// applyTLS sets a TLS server's transport on its agent.Server: unobfuscated packets with the UNENCRYPTED
// flag, dialed through a verifying TLS 1.3 dialer.
func (s *Server) applyTLS(as *agentconfig.Server) error {
	if !s.TLS.Enable {
		return nil
	}
	if s.tlsStore == nil {
		return fmt.Errorf("server %s: TLS settings were not validated", s.Name)
	}
	d, err := tlsconf.NewDialer(s.tlsStore, s.SourceAddress)
	if err != nil {
		return err
	}
	as.Key, as.Unencrypted, as.AllowUnencrypted, as.Dial = nil, true, true, d.Dial
	as.TLS = func() (agentconfig.TLSState, bool) {
		st, ok := d.State()
		return agentconfig.TLSState{Version: st.Version, PeerIdentity: st.PeerIdentity, PeerExpiry: st.PeerExpiry,
			ClientExpiry: st.ClientExpiry, Resumed: st.Resumed, At: st.At}, ok
	}
	return nil
}
