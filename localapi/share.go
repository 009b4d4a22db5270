package localapi

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Fair shares of connections: the Server's listener reads each connection's peer credentials as it
// accepts it, and a uid other than root that already holds ConnectionShare connections has its new one
// refused at once (503, code too_many_connections), before any handler goroutine exists for it, unless
// one of its connections is idle (kept open between requests, HTTP keep-alive): then the oldest idle one
// is closed to make room. A kept connection is a convenience, never a claim: idle connections cannot keep
// their uid's next request out, and a uid never holds more than its share, idle or not.

const (
	// refusalGrace bounds the reading of a refused connection's request and the writing of its answer.
	refusalGrace = time.Second
	// maxRefusals bounds the refused connections being answered at once; past it they are closed unanswered.
	maxRefusals = 16
)

// peerConn is an accepted connection with its peer, counted against its uid's share until closed.
type peerConn struct {
	net.Conn
	p       peer
	release func()
	once    sync.Once
	// Guarded by shares.mu: when it went idle between requests (zero while not idle), and whether its
	// slot in its uid's share was given back.
	idle     time.Time
	released bool
	evicted  bool // closed by the server while idle: a request read on it meanwhile is never served
}

func (c *peerConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// shares counts the connections per uid, for every listener of a Server.
type shares struct {
	s        *Server
	refusals chan struct{}  // semaphore of the refusal answers in progress
	wg       sync.WaitGroup // the refusal answers

	mu     sync.Mutex
	byUID  map[uint32]int
	idle   map[uint32]map[*peerConn]struct{} // the shared connections idle between requests, per uid
	closed bool                              // Shutdown waits for the refusals: none starts after
}

func newShares(s *Server) *shares {
	return &shares{s: s, refusals: make(chan struct{}, maxRefusals), byUID: map[uint32]int{},
		idle: map[uint32]map[*peerConn]struct{}{}}
}

// connState is the http.Server's ConnState hook: it keeps the idle connections of each uid.
func (l *shares) connState(c net.Conn, st http.ConnState) {
	pc, ok := c.(*peerConn)
	if !ok || !pc.p.known || pc.p.caller.UID == l.s.rule.rootUID {
		return
	}
	uid := pc.p.caller.UID
	l.mu.Lock()
	defer l.mu.Unlock()
	if st == http.StateIdle {
		if l.idle[uid] == nil {
			l.idle[uid] = map[*peerConn]struct{}{}
		}
		l.idle[uid][pc] = struct{}{}
		pc.idle = time.Now()
		return
	}
	l.forgetIdle(uid, pc)
}

func (l *shares) forgetIdle(uid uint32, pc *peerConn) {
	if m := l.idle[uid]; m != nil {
		delete(m, pc)
		if len(m) == 0 {
			delete(l.idle, uid)
		}
	}
	pc.idle = time.Time{}
}

// claim is called by the handler before it serves a request read on c: false when the server evicted c
// while it was idle (the request's bytes may have been read as the eviction closed it). Eviction picks
// only idle connections, and the ConnState hook takes c out of the idle set before any handler runs, so
// after a true answer c cannot be evicted during this request: a request on an evicted connection is
// never served, and its client may safely send it again on a new connection (docs/api.md).
func (l *shares) claim(c *peerConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !c.evicted
}

// oldestIdle takes uid's longest idle connection out of the idle set (l.mu held); nil when none.
func (l *shares) oldestIdle(uid uint32) *peerConn {
	var old *peerConn
	for pc := range l.idle[uid] {
		if old == nil || pc.idle.Before(old.idle) {
			old = pc
		}
	}
	if old != nil {
		l.forgetIdle(uid, old)
	}
	return old
}

// close stops new refusal answers and waits for those in progress (each ends within refusalGrace).
func (l *shares) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.wg.Wait()
}

// shareListener enforces the per-uid connection share on one listener.
type shareListener struct {
	net.Listener
	*shares
}

func (l *shareListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		p := peerOf(c, l.s.rule)
		if !p.known || p.caller.UID == l.s.rule.rootUID {
			// Root is not shared out; an unknown peer is refused by every request's peer check.
			return &peerConn{Conn: c, p: p, release: func() {}}, nil
		}
		uid := p.caller.UID
		l.mu.Lock()
		if l.byUID[uid] >= l.s.cfg.ConnectionShare {
			if old := l.oldestIdle(uid); old != nil {
				// Its slot passes to the new connection: the old one's release must not free it again
				// (unless it already did, closing on its own meanwhile: then the slot is taken anew).
				if old.released {
					l.byUID[uid]++
				}
				old.released, old.evicted = true, true
				l.mu.Unlock()
				_ = old.Conn.Close()
				if m := l.s.cfg.Metrics; m != nil {
					m.APIRejected.WithLabelValues("idle_evicted").Inc()
				}
				l.mu.Lock()
			} else {
				l.mu.Unlock()
				l.refuse(c, uid)
				continue
			}
		} else {
			l.byUID[uid]++
		}
		l.mu.Unlock()
		pc := &peerConn{Conn: c, p: p}
		pc.release = func() {
			l.mu.Lock()
			if !pc.released {
				pc.released = true
				if l.byUID[uid]--; l.byUID[uid] <= 0 {
					delete(l.byUID, uid)
				}
			}
			l.mu.Unlock()
		}
		return pc, nil
	}
}

// connections is the number of connections uid holds.
func (l *shares) connections(uid uint32) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byUID[uid]
}

// refuse answers a connection over its uid's share with a 503, within refusalGrace, or closes it
// unanswered when too many refusals are already being answered.
func (l *shares) refuse(c net.Conn, uid uint32) {
	const reason = "connection_share"
	if m := l.s.cfg.Metrics; m != nil {
		m.APIRejected.WithLabelValues(reason).Inc()
	}
	l.s.log.Warn().Uint32("uid", uid).Int("share", l.s.cfg.ConnectionShare).Msg("local API connection refused: over its uid's share")
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = c.Close()
		return
	}
	select {
	case l.refusals <- struct{}{}:
	default:
		l.mu.Unlock()
		_ = c.Close()
		return
	}
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		defer func() { <-l.refusals }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(refusalGrace))
		// Read the request first, so that the client, which writes before it reads, sees the answer.
		if req, err := http.ReadRequest(bufio.NewReaderSize(io.LimitReader(c, int64(l.s.cfg.MaxHeaderBytes)+l.s.cfg.MaxRequestBytes), 4096)); err == nil {
			_, _ = io.Copy(io.Discard, req.Body)
		}
		body := fmt.Sprintf(`{"error":{"code":%q,"message":"uid %d already has %d connections open to the agent"}}`+"\n",
			CodeTooManyConnections, uid, l.s.cfg.ConnectionShare)
		_, _ = io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"+
			"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	}()
}
