package tacplustest

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"

	"github.com/tacagent/tacagent/tacplus"
)

// TACACS+ over TLS (RFC 9887) for the test server. Config.TLS turns it on; the faults a TLS client must
// refuse are made by the configuration itself:
//   - expired certificate, wrong name, unknown CA: serve such a certificate (tlsconf/testca issues them);
//   - TLS 1.2 only: MaxVersion: tls.VersionTLS12;
//   - client certificate required: ClientAuth: tls.RequireAndVerifyClientCert with ClientCAs;
//   - a handshake that stalls: StartStall, a listener that accepts and never answers.
// The UNENCRYPTED-flag fault over TLS is Faults.ToggleUnencrypted: the reply then lacks the flag, which a
// client must treat as a protocol error (RFC 9887 section 5.2).

// serverCodecOptions is the server's codec: obfuscated with key over TCP, unobfuscated with the
// UNENCRYPTED flag over TLS.
func serverCodecOptions(key []byte, tc *tls.Config) tacplus.Options {
	if tc != nil {
		return tacplus.Options{Role: tacplus.RoleServer, Unencrypted: true, AllowUnencrypted: true}
	}
	return tacplus.Options{Role: tacplus.RoleServer, Key: key}
}

// wrapTLS puts a TLS listener over ln when tc is set.
func wrapTLS(ln net.Listener, tc *tls.Config) net.Listener {
	if tc == nil {
		return ln
	}
	return tls.NewListener(ln, tc.Clone())
}

// Staller accepts TCP connections and never reads or writes: a TLS handshake with it stalls until the
// client gives up. Close ends the listener and every held connection.
type Staller struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	done  bool
}

// StartStall listens on addr ("127.0.0.1:0" when empty; loopback only).
func StartStall(addr string) (*Staller, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Staller{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			s.mu.Lock()
			if s.done {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	return s, nil
}

// Addr is the listening address.
func (s *Staller) Addr() string { return s.ln.Addr().String() }

// Accepted is the number of connections held so far.
func (s *Staller) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops listening and closes the held connections.
func (s *Staller) Close() error {
	s.mu.Lock()
	s.done = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	err := s.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	s.wg.Wait()
	return err
}
