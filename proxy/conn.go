package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// Reasons of tacagent_proxy_bad_packets_total besides the codec's decode reasons (tacplus.Reason).
const (
	badFromServer   = "not_from_client"   // an even seq_no: a reply, which no client sends
	badSessionReuse = "session_in_use"    // a START for a session_id in progress on the connection
	badUnexpected   = "unexpected_packet" // a packet for no session, or not the one owed, or out of turn
	badSecondStart  = "second_session"    // a session while another runs, on a connection without single-connect
)

// readBuffer is the size of a client connection's read buffer.
const readBuffer = 4 << 10

// client is one client connection. Its serve goroutine owns the reading; session goroutines write under
// wmu.
type client struct {
	s    *Server
	nc   net.Conn
	peer peer
	ctx  context.Context // cancelled when the connection ends: every session of it stops
	stop context.CancelFunc

	wmu  sync.Mutex
	wbuf []byte

	mu       sync.Mutex
	sessions map[uint32]*session
	single   bool // single-connect agreed (section 4.3): the first packet asked for it
	started  bool // the first packet was read
	draining bool // close once no session is in progress
	wg       sync.WaitGroup

	closed   atomic.Bool   // closed by the front end (drain, error, deadline)
	readDone chan struct{} // closed when the reading ended (readEnded)
}

func newClient(s *Server, nc net.Conn, p peer) *client {
	ctx, stop := context.WithCancel(context.Background())
	return &client{s: s, nc: nc, peer: p, ctx: ctx, stop: stop, sessions: make(map[uint32]*session), readDone: make(chan struct{})}
}

// serve reads packets until the connection ends, then cancels the sessions and waits for them.
func (c *client) serve() {
	// Buffered: a header and its body usually arrive together and take one read, not two. The buffer
	// holds at most what the client sent, bounded by its size; the codec bounds each packet.
	rd := c.s.codec.NewReader(bufio.NewReaderSize(c.nc, readBuffer))
	c.read(rd)
	<-c.readDone
	c.wg.Wait()
}

// readEnded is the end of the reading: the connection closes and its sessions are cancelled, whichever
// goroutine is running them.
func (c *client) readEnded() {
	c.close()
	c.stop()
	close(c.readDone)
}

// read reads and routes packets until the connection ends (then readEnded), or until a packet
// starts a session: then a new goroutine takes over the reading and this one runs the session, so that
// the session starts without waiting for a goroutine to be scheduled. One goroutine reads at a time.
func (c *client) read(rd *tacplus.Reader) {
	for {
		if err := c.armRead(); err != nil {
			c.readEnded()
			return
		}
		h, body, err := rd.Next()
		if err != nil {
			// The end of the stream is the client giving up (a half-close cannot be told from a close):
			// its sessions are cancelled, as a caller's give-up ends its requests everywhere.
			c.readError(err)
			c.readEnded()
			return
		}
		start, reason, err := c.route(h, body)
		if reason != "" {
			c.bad(reason, h, err)
			c.readEnded()
			return
		}
		if start != nil {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.read(rd)
			}()
			start()
			return
		}
	}
}

// armRead sets the read deadline: IdleTimeout from now while none of the client's sessions is in
// progress, none while one is (a client waiting for its answer sends nothing, and its sessions are
// bounded by their own timeouts). The session that ends last arms it again (end).
func (c *client) armRead() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var dl time.Time
	if len(c.sessions) == 0 {
		dl = time.Now().Add(c.s.cfg.IdleTimeout)
	}
	return c.nc.SetReadDeadline(dl)
}

func (c *client) readError(err error) {
	if c.closed.Load() || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return // the client went away between packets, or the front end closed the connection
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.s.m.Timeouts.WithLabelValues("read").Inc()
		c.s.log.Info().Str("peer", c.peer.String()).Str("client", c.nc.RemoteAddr().String()).Dur("idle_timeout", c.s.cfg.IdleTimeout).Msg("tacacs front end: client idle or stalled, closed")
		return
	}
	var de *tacplus.DecodeError
	if errors.As(err, &de) {
		c.bad(reasonName(err), tacplus.Header{}, err)
		return
	}
	c.s.log.Debug().Err(err).Str("peer", c.peer.String()).Msg("tacacs front end: read")
}

// bad counts and logs a refused packet (never its content: the reason and the header only).
func (c *client) bad(reason string, h tacplus.Header, err error) {
	c.s.m.BadPackets.WithLabelValues(reason).Inc()
	ev := c.s.log.Warn().Str("peer", c.peer.String()).Str("client", c.nc.RemoteAddr().String()).Str("reason", reason)
	if h.Version != 0 {
		ev = ev.Str("header", h.String())
	}
	if err != nil {
		ev = ev.Str("error", tacplus.ClassName(err)+": "+errorText(err))
	}
	ev.Msg("tacacs front end: bad packet from client, connection closed")
}

// errorText is a decode error's text: the codec's messages name fields and lengths, never their bytes.
func errorText(err error) string {
	var de *tacplus.DecodeError
	if errors.As(err, &de) {
		return de.Error()
	}
	return "connection error"
}

// route decodes one packet and hands it to its session. A first packet registers its session and
// returns the function that runs it. A non-empty reason refuses the packet (and ends the connection).
func (c *client) route(h tacplus.Header, raw []byte) (func(), string, error) {
	if !h.FromClient() {
		return nil, badFromServer, nil
	}
	body, err := c.s.codec.NewBody(h)
	if err == nil {
		err = c.s.codec.DecodeBody(h, raw, body)
	}
	if err != nil {
		return nil, reasonName(err), err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		c.started = true
		c.single = h.Flags&tacplus.FlagSingleConnect != 0
	}
	if h.SeqNo == 1 {
		if _, busy := c.sessions[h.SessionID]; busy {
			return nil, badSessionReuse, nil
		}
		// Without single-connect, sessions take turns (section 4.3: one at a time on the connection).
		if !c.single && c.runningLocked() > 0 {
			return nil, badSecondStart, nil
		}
		return c.startLocked(h, body), "", nil
	}
	ss := c.sessions[h.SessionID]
	cont, ok := body.(*tacplus.AuthenContinue)
	if ss == nil || !ok || !ss.owed || h.SeqNo != ss.expect || h.Version != ss.version {
		return nil, badUnexpected, nil
	}
	ss.owed = false
	ss.in <- cont // buffered (1) and owed at most once: never blocks
	return nil, "", nil
}

// runningLocked counts the sessions that have not begun writing their final reply: a client without
// single-connect may send its next START as soon as it has read that reply.
func (c *client) runningLocked() int {
	n := 0
	for _, ss := range c.sessions {
		if !ss.final {
			n++
		}
	}
	return n
}

// startLocked registers a session for a first packet and returns what runs it: the session, or an ERROR
// answer when a limit refuses it.
func (c *client) startLocked(h tacplus.Header, body tacplus.Body) func() {
	ss := &session{c: c, id: h.SessionID, version: h.Version, typ: h.Type, seq: h.SeqNo, began: time.Now(),
		in: make(chan *tacplus.AuthenContinue, 1)}
	reason := ""
	if len(c.sessions) >= c.s.cfg.MaxSessionsPerClient {
		reason = rejectClientSessions
	} else if ok, why := c.s.takeSession(c.peer); !ok {
		reason = why
	}
	c.sessions[h.SessionID] = ss
	return func() {
		if reason != "" {
			c.s.m.Rejected.WithLabelValues(reason).Inc()
			c.s.log.Warn().Str("peer", c.peer.String()).Str("reason", reason).Str("kind", kindName(h.Type)).Msg("tacacs front end: session refused")
			ss.refuse(reason)
			c.end(ss, false)
			return
		}
		c.s.m.SessionsActive.Inc()
		ss.run(body)
		c.s.m.SessionsActive.Dec()
		c.end(ss, true)
	}
}

// end forgets a finished session; when draining, the connection closes once no session is left. Without
// single-connect the connection stays open for the client's next session, one at a time, as tacquito's
// server keeps it (tacquito's client reuses it without asking for single-connect; clients of the
// pam_tacplus kind close it themselves); idle_timeout closes it when the client sends nothing more.
func (c *client) end(ss *session, counted bool) {
	if counted {
		c.s.releaseSession(c.peer)
	}
	c.mu.Lock()
	delete(c.sessions, ss.id)
	last := len(c.sessions) == 0 && c.draining
	if len(c.sessions) == 0 && !last {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout)) // idle again: a pending read is bounded
	}
	c.mu.Unlock()
	if last {
		c.close()
	}
}

// drain closes the connection now when it is idle, else once its sessions ended.
func (c *client) drain() {
	c.mu.Lock()
	c.draining = true
	idle := len(c.sessions) == 0
	c.mu.Unlock()
	if idle {
		c.close()
	}
}

// close closes the socket once; the reader then ends and cancels the sessions.
func (c *client) close() {
	if c.closed.CompareAndSwap(false, true) {
		_ = c.nc.Close()
	}
}

// send writes one packet to the client under the write deadline. A failed write closes the connection.
func (c *client) send(h tacplus.Header, body tacplus.Body) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return net.ErrClosed
	}
	var err error
	if c.wbuf, err = c.s.codec.AppendPacket(c.wbuf[:0], h, body); err != nil {
		return err
	}
	defer clear(c.wbuf) // a prompt's packet is obfuscated, but keep no copy of it
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout)); err != nil {
		c.close()
		return err
	}
	if _, err := c.nc.Write(c.wbuf); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.s.m.Timeouts.WithLabelValues("write").Inc()
			c.s.log.Info().Str("peer", c.peer.String()).Dur("write_timeout", c.s.cfg.WriteTimeout).Msg("tacacs front end: client does not read, closed")
		}
		c.close()
		return err
	}
	return nil
}

// replyFlags are the header flags of the front end's replies: single-connect echoed when agreed.
func (c *client) replyFlags() tacplus.HeaderFlag {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.single {
		return tacplus.FlagSingleConnect
	}
	return 0
}

// reasonName is a decode error's reason as a metric label.
func reasonName(err error) string {
	if r := tacplus.ReasonOf(err); r != 0 {
		return r.String()
	}
	return "decode"
}
