package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
)

// Reasons of tacagent_proxy_rejected_total.
const (
	rejectNonLoopback    = "nonloopback"         // a client from outside loopback, not allowed
	rejectPeerUnknown    = "peer_unknown"        // the owner of a loopback client's socket was not found
	rejectMaxClients     = "max_clients"         // MaxClients connections are open
	rejectConnShare      = "connection_share"    // the uid holds its share of connections
	rejectSessionShare   = "session_share"       // the uid holds its share of sessions
	rejectClientSessions = "sessions_per_client" // the connection holds MaxSessionsPerClient sessions
	rejectRateLimited    = "rate_limited"        // the failure rate limit refused an authentication
	rejectUnsupported    = "unsupported"         // a flow the front end does not forward
	rejectShutdown       = "shutting_down"       // a session started while the front end stops
)

// Server is the loopback TACACS+ front end. Serve it on a listener; Shutdown stops it.
type Server struct {
	cfg   Config
	log   zerolog.Logger
	m     *metrics.Proxy
	codec *tacplus.Codec

	mu       sync.Mutex
	ln       net.Listener
	clients  map[*client]struct{}
	admitted int            // connections accepted and not yet ended (MaxClients)
	conns    map[string]int // open connections per share key (non-root uid, or non-loopback peer)
	sessions map[string]int // sessions in progress per share key
	closing  bool
	done     chan struct{}  // closed by Shutdown
	wg       sync.WaitGroup // the accept loop and every client goroutine
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errConfig("no backend")
	}
	if len(cfg.Key) == 0 {
		return nil, errConfig("no local key: the front end does not serve unobfuscated TACACS+")
	}
	cfg = cfg.withDefaults()
	codec, err := tacplus.NewCodec(tacplus.Options{Role: tacplus.RoleServer, Key: cfg.Key, MaxBodyLen: cfg.MaxBody})
	if err != nil {
		return nil, errConfig(err.Error())
	}
	m := metrics.NewProxy()
	if cfg.Metrics != nil {
		m = cfg.Metrics.Proxy
	}
	return &Server{cfg: cfg, log: cfg.Log, m: m, codec: codec,
		clients: make(map[*client]struct{}), conns: make(map[string]int), sessions: make(map[string]int), done: make(chan struct{})}, nil
}

// Listen opens the front end's TCP listener on addr; a non-loopback address needs allowNonLoopback.
func Listen(addr string, allowNonLoopback bool) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, errConfig("listen address " + strconv.Quote(addr) + ": " + err.Error())
	}
	if ip, err := netip.ParseAddr(host); (err != nil || !ip.IsLoopback()) && !allowNonLoopback {
		return nil, errConfig("listen address " + strconv.Quote(addr) + " is not a loopback IP address (set allow_nonloopback: true to serve other hosts)")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "tacacs front end: listen " + addr, Err: err}
	}
	return ln, nil
}

// Serve accepts clients on ln until Shutdown; it returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	s.ln = ln
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors (EMFILE, ENFILE) and the like pass: wait a little and accept again,
			// rather than stop serving every client for good.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn().Err(err).Dur("retry_in", backoff).Msg("tacacs front end: accept failed")
			select {
			case <-time.After(backoff):
			case <-s.done:
				return nil
			}
			continue
		}
		backoff = 0
		s.admit(nc)
	}
}

// admit applies the connection rules and limits and starts the client's goroutine. The global cap is
// taken at once; who the client is (a kernel lookup) is found on the client's own goroutine, so that a
// slow lookup never holds up the accept loop.
func (s *Server) admit(nc net.Conn) {
	s.mu.Lock()
	reason := ""
	switch {
	case s.closing:
		reason = rejectShutdown
	case s.admitted >= s.cfg.MaxClients:
		reason = rejectMaxClients
	}
	if reason != "" {
		s.mu.Unlock()
		s.reject(nc, reason, peer{})
		return
	}
	s.admitted++
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			s.admitted--
			s.mu.Unlock()
		}()
		s.serveClient(nc)
	}()
}

// serveClient identifies the client, applies its share of connections and serves it.
func (s *Server) serveClient(nc net.Conn) {
	p, reason := s.identify(nc)
	if reason != "" {
		s.reject(nc, reason, p)
		return
	}
	s.mu.Lock()
	switch {
	case s.closing:
		reason = rejectShutdown
	case p.shared() && s.conns[p.key()] >= s.cfg.ConnectionShare:
		reason = rejectConnShare
	}
	if reason != "" {
		s.mu.Unlock()
		s.reject(nc, reason, p)
		return
	}
	c := newClient(s, nc, p)
	s.clients[c] = struct{}{}
	if p.shared() {
		s.conns[p.key()]++
	}
	s.mu.Unlock()
	s.m.Connections.Inc()
	s.m.Clients.Inc()
	c.serve()
	s.mu.Lock()
	delete(s.clients, c)
	if p.shared() {
		if s.conns[p.key()]--; s.conns[p.key()] <= 0 {
			delete(s.conns, p.key())
		}
	}
	s.mu.Unlock()
	s.m.Clients.Dec()
}

func (s *Server) reject(nc net.Conn, reason string, p peer) {
	s.m.Rejected.WithLabelValues(reason).Inc()
	s.log.Warn().Str("client", nc.RemoteAddr().String()).Str("peer", p.String()).Str("reason", reason).Msg("tacacs front end: connection refused")
	_ = nc.Close()
}

// identify finds who is calling: the uid owning a loopback client's socket, or the address of a
// non-loopback client.
func (s *Server) identify(nc net.Conn) (peer, string) {
	ra, _ := nc.RemoteAddr().(*net.TCPAddr)
	if ra == nil {
		return peer{}, rejectPeerUnknown
	}
	ip, _ := netip.AddrFromSlice(ra.IP)
	ip = ip.Unmap()
	if !ip.IsLoopback() {
		if !s.cfg.AllowNonLoopback {
			return peer{addr: ip.String()}, rejectNonLoopback
		}
		return peer{addr: ip.String()}, ""
	}
	uid, err := s.cfg.owner(nc.RemoteAddr().String(), nc.LocalAddr().String())
	if err != nil {
		s.log.Debug().Err(err).Str("client", nc.RemoteAddr().String()).Msg("tacacs front end: socket owner")
		return peer{addr: ip.String()}, rejectPeerUnknown
	}
	return peer{addr: ip.String(), uid: uid, known: true}, ""
}

// takeSession reserves a session of p's share; false when the share is used up.
func (s *Server) takeSession(p peer) (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false, rejectShutdown
	}
	if p.shared() {
		if s.sessions[p.key()] >= s.cfg.SessionShare {
			return false, rejectSessionShare
		}
		s.sessions[p.key()]++
	}
	return true, ""
}

func (s *Server) releaseSession(p peer) {
	if !p.shared() {
		return
	}
	s.mu.Lock()
	if s.sessions[p.key()]--; s.sessions[p.key()] <= 0 {
		delete(s.sessions, p.key())
	}
	s.mu.Unlock()
}

// Addr is the listener's address, "" before Serve.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting, lets the sessions in progress finish until ctx ends, then closes every client
// connection (their sessions are cancelled) and waits for every goroutine of the Server.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		close(s.done)
	}
	s.closing = true
	if s.ln != nil {
		_ = s.ln.Close()
	}
	clients := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	for _, c := range clients {
		c.drain() // idle connections close now; busy ones after their sessions
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	for _, c := range clients {
		c.close()
	}
	<-done
	return ctx.Err()
}

// peer is who a client connection belongs to.
type peer struct {
	addr  string // the client's IP address
	uid   uint32
	known bool // uid was read from the kernel's socket table
}

// shared reports whether p is held to the per-uid shares: root is not (the global limits bound it).
func (p peer) shared() bool { return !p.known || p.uid != 0 }

func (p peer) key() string {
	if p.known {
		return "uid:" + strconv.FormatUint(uint64(p.uid), 10)
	}
	return "addr:" + p.addr
}

func (p peer) String() string {
	if p.known {
		return "uid=" + strconv.FormatUint(uint64(p.uid), 10)
	}
	if p.addr == "" {
		return "unknown"
	}
	return "addr=" + p.addr
}
