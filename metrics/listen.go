package metrics

import (
	"net"
	"net/netip"
	"sync"
)

// DefaultMaxConns caps the connections the HTTP endpoints hold at once. Past it, new connections wait in
// the kernel's accept queue and cost the daemon no descriptor: a local user opening thousands of idle
// connections to /metrics can starve /metrics, never the logins (server connections and the local API).
const DefaultMaxConns = 64

// Listen listens on addr for the HTTP endpoints and holds at most maxConns accepted connections at once
// (DefaultMaxConns when maxConns <= 0). loopback reports whether addr binds only loopback addresses; the
// caller warns when it does not.
func Listen(addr string, maxConns int) (ln net.Listener, loopback bool, err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return LimitListener(l, maxConns), IsLoopback(l.Addr()), nil
}

// IsLoopback reports whether a listener's address accepts connections from this host only.
func IsLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	return ok && ip.Unmap().IsLoopback()
}

// LimitListener wraps l so that at most max accepted connections are open at once: Accept waits for a
// closed one before it takes the next from the kernel.
func LimitListener(l net.Listener, max int) net.Listener {
	if max <= 0 {
		max = DefaultMaxConns
	}
	return &limitListener{Listener: l, sem: make(chan struct{}, max), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem  chan struct{}
	done chan struct{}
	once sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
