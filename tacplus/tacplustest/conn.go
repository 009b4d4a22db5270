package tacplustest

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tacagent/tacagent/tacplus"
)

// readBufferSize is the connection's read buffer: large enough to hold a burst of pipelined requests, so
// that their replies can be coalesced into one Write.
const readBufferSize = 16 << 10

// wrongSessionMask turns a session_id into a different one for the WrongSession fault.
const wrongSessionMask = 0xa5a5a5a5

// errIdle ends a connection that was idle for the configured timeout.
var errIdle = errors.New("tacplustest: idle timeout")

// conn is one client connection. One reader goroutine (serve) decodes packets and runs every session's
// state machine; replies go out inline from it, or from a goroutine per delayed reply. Writes are
// serialised by wmu, and each Write carries whole packets.
type conn struct {
	s    *Server
	id   uint64
	nc   net.Conn
	br   *bufio.Reader
	rd   *tacplus.Reader
	done chan struct{} // closed by close
	once sync.Once

	// Owned by the reader goroutine.
	sessions map[uint32]*session
	seen     bool // the first packet was read
	multi    bool // the connection carries more than one session

	pending atomic.Int32 // delayed replies not yet written; the connection is not idle while > 0
	active  atomic.Int64 // unix nanoseconds of the last read or write

	wmu        sync.Mutex // guards wbuf, closeAfter and the socket's Write
	wbuf       []byte     // replies waiting to be written together
	closeAfter bool       // close once wbuf is written: the connection's only session is over
	// firstFlag goes on the first reply WRITTEN on the connection (section 4.3: the client reads the flag
	// of the first reply it receives), whichever session it answers: with per-user delays a later
	// session's reply can overtake the reply to the connection's first packet.
	firstFlag tacplus.HeaderFlag
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	c := &conn{s: s, id: id, nc: nc, done: make(chan struct{}), sessions: make(map[uint32]*session)}
	c.br = bufio.NewReaderSize(idleReader{c}, readBufferSize)
	c.rd = s.codec.NewReader(c.br)
	return c
}

// close closes the socket once; the reader goroutine then ends, and delayed replies are abandoned.
func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}

func (c *conn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *conn) touch() { c.active.Store(time.Now().UnixNano()) }

// serve is the reader goroutine.
func (c *conn) serve() {
	defer c.s.wg.Done()
	defer c.s.forget(c)
	defer c.close()
	c.touch()
	if c.s.cfg.idle > 0 {
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.idle))
	}
	for {
		h, body, err := c.rd.Next()
		if err != nil {
			c.readError(err)
			return
		}
		c.s.st.pktIn.Add(1)
		c.handle(h, body)
		if !c.nextBuffered() {
			c.flush()
		}
	}
}

func (c *conn) readError(err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, errIdle), errors.Is(err, net.ErrClosed):
		return
	case tacplus.ReasonOf(err) != 0:
		// A header the codec refuses leaves the stream out of step: the connection cannot continue.
		c.s.st.bad.Add(1)
	}
	if !c.closed() {
		c.s.logf("tacplustest: conn %d: read: %v", c.id, err)
	}
}

// nextBuffered reports whether a whole next packet is already buffered, in which case replies wait so that
// they are written together.
func (c *conn) nextBuffered() bool {
	n := c.br.Buffered()
	if n < tacplus.HeaderLen {
		return false
	}
	hdr, err := c.br.Peek(tacplus.HeaderLen)
	if err != nil {
		return false
	}
	return uint64(n) >= tacplus.HeaderLen+uint64(binary.BigEndian.Uint32(hdr[8:12]))
}

// idleReader reads from the socket and applies the idle timeout: a read deadline that, when it fires, is
// pushed back while there was recent traffic or a reply is pending, so that a packet is never cut by it.
type idleReader struct{ c *conn }

func (r idleReader) Read(p []byte) (int, error) {
	c := r.c
	for {
		n, err := c.nc.Read(p)
		if n > 0 {
			c.touch()
			return n, nil
		}
		var ne net.Error
		if err == nil || c.s.cfg.idle <= 0 || !errors.As(err, &ne) || !ne.Timeout() {
			return n, err
		}
		now := time.Now()
		until := time.Unix(0, c.active.Load()).Add(c.s.cfg.idle)
		if c.pending.Load() > 0 && !until.After(now) {
			until = now.Add(c.s.cfg.idle)
		}
		if !until.After(now) {
			c.s.st.idleClosed.Add(1)
			return 0, errIdle
		}
		c.nc.SetReadDeadline(until)
	}
}

// session is the server side of one session (section 3: a single authentication sequence, authorization
// exchange or accounting exchange).
type session struct {
	id      uint32
	kind    tacplus.PacketType
	version uint8 // the version byte of the START or REQUEST, echoed in every reply
	expect  uint8 // the seq_no the next client packet must carry
	user    string
	delay   time.Duration

	// Authentication only.
	action  tacplus.AuthenAction
	service tacplus.AuthenService
	state   authState
	prompt  int // index into the user's Prompts while state is stData
}

// handle processes one packet: body is its clear text, valid until the next read.
func (c *conn) handle(h tacplus.Header, body []byte) {
	if !c.seen {
		c.seen = true
		c.negotiate(h)
	}
	s := c.sessions[h.SessionID]
	switch {
	case h.SeqNo == 1 && s != nil:
		c.protocolError(h, s, "session_id is already in use on this connection")
		return
	case h.SeqNo == 1:
		s = &session{id: h.SessionID, kind: h.Type, version: h.Version}
		c.s.st.sessions.Add(1)
	case s == nil:
		c.protocolError(h, nil, "no session with this session_id")
		return
	case h.SeqNo != s.expect || h.Type != s.kind:
		c.protocolError(h, s, "seq_no or type out of sequence")
		return
	}
	b, err := c.s.codec.NewBody(h)
	if err == nil {
		err = c.s.codec.DecodeBody(h, body, b)
	}
	if err != nil {
		// Section 4.5: lengths that do not add up mean the keys differ. Either way the session ends.
		c.s.st.bad.Add(1)
		c.s.logf("tacplustest: conn %d session 0x%08x: %v", c.id, h.SessionID, err)
		c.errorReply(s, h, "undecodable packet")
		return
	}
	c.sessions[h.SessionID] = s
	switch b := b.(type) {
	case *tacplus.AuthenStart:
		c.authenStart(s, h, b)
	case *tacplus.AuthenContinue:
		c.authenContinue(s, h, b)
	case *tacplus.AuthorRequest:
		c.author(s, h, b)
	case *tacplus.AcctRequest:
		c.account(s, h, b)
	}
}

// negotiate applies section 4.3 to the connection's first packet.
func (c *conn) negotiate(h tacplus.Header) {
	asked := h.Flags&tacplus.FlagSingleConnect != 0
	switch {
	case asked && c.s.cfg.single:
		c.multi = true
		c.wmu.Lock()
		c.firstFlag = tacplus.FlagSingleConnect
		c.wmu.Unlock()
		c.s.st.scAgreed.Add(1)
	case asked:
		c.s.st.scRefused.Add(1) // reply without the flag, close after the session
	default:
		c.multi = c.s.cfg.keepOpen
	}
}

// protocolError answers a packet that does not fit its session with ERROR and ends the session.
func (c *conn) protocolError(h tacplus.Header, s *session, why string) {
	c.s.st.protocolErrors.Add(1)
	c.s.logf("tacplustest: conn %d session 0x%08x seq %d: %s", c.id, h.SessionID, h.SeqNo, why)
	if s == nil {
		s = &session{id: h.SessionID, kind: h.Type, version: h.Version}
	}
	c.errorReply(s, h, why)
}

// errorReply ends s with the ERROR status of its kind.
func (c *conn) errorReply(s *session, h tacplus.Header, msg string) {
	if h.Type == tacplus.TypeAuthen {
		c.s.st.authenError.Add(1)
	}
	c.answer(s, h, errorBody(h.Type, msg), true, c.s.plan(s.user))
}

// errorBody is the ERROR reply of each kind (sections 5.2, 6.2, 7.2).
func errorBody(t tacplus.PacketType, msg string) tacplus.Body {
	switch t {
	case tacplus.TypeAuthor:
		return &tacplus.AuthorResponse{Status: tacplus.AuthorStatusError, ServerMsg: msg}
	case tacplus.TypeAcct:
		return &tacplus.AcctReply{Status: tacplus.AcctStatusError, ServerMsg: msg}
	}
	return &tacplus.AuthenReply{Status: tacplus.AuthenStatusError, ServerMsg: msg}
}

// reply is one packet on its way out.
type reply struct {
	h          tacplus.Header
	body       tacplus.Body
	p          plan
	closeAfter bool
	crossID    uint32 // for fCross: the session_id of another live session, chosen when the reply was made
}

// answer sends body as the reply to the packet with header req. final ends the session; p holds the faults
// chosen for this reply (the caller chose them first when they change what it records).
func (c *conn) answer(s *session, req tacplus.Header, body tacplus.Body, final bool, p plan) {
	if p.f&fError != 0 {
		body, final = errorBody(s.kind, "injected error"), true
	}
	if req.SeqNo == 0xff {
		// Section 4.1: the sequence number must not wrap, so there is no reply to give.
		final = true
		p.f = fClose
	}
	r := reply{
		h:    tacplus.Header{Version: s.version, SeqNo: req.SeqNo + 1, SessionID: s.id},
		body: body, p: p,
	}
	if p.f&fCross != 0 {
		// Chosen here, on the reader goroutine that owns c.sessions (emit may run on a timer goroutine).
		r.crossID = s.id ^ wrongSessionMask
		for id := range c.sessions {
			if id != s.id {
				r.crossID = id
				break
			}
		}
	}
	if r, ok := body.(*tacplus.AuthenReply); ok && r.Status == tacplus.AuthenStatusFail {
		p.delay += c.s.failDelay(s.user)
	}
	if final {
		delete(c.sessions, s.id)
		r.closeAfter = !c.multi
	} else {
		s.expect = req.SeqNo + 2
	}
	r.p = p
	delay := s.delay + p.delay
	if delay <= 0 {
		c.emit(r)
		return
	}
	c.pending.Add(1)
	c.s.wg.Add(1)
	go c.later(r, delay)
}

// later writes a delayed reply, unless the connection closes first.
func (c *conn) later(r reply, d time.Duration) {
	defer c.s.wg.Done()
	defer c.pending.Add(-1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		c.emit(r)
		c.flush()
	case <-c.done:
	}
}

// endQuietly ends a session that gets no reply (an abort, section 5.4.4).
func (c *conn) endQuietly(s *session) {
	delete(c.sessions, s.id)
	if !c.multi {
		c.wmu.Lock()
		c.closeAfter = true
		c.wmu.Unlock()
	}
}

// emit encodes r into the output buffer with its faults applied. flush writes it.
func (c *conn) emit(r reply) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed() {
		return
	}
	switch {
	case r.p.f&fDrop != 0:
		return
	case r.p.f&fClose != 0:
		c.flushLocked()
		c.close()
		return
	}
	codec := c.s.codec
	if r.p.f&fWrongKey != 0 {
		codec = c.s.wrongCodec
	}
	h := r.h
	h.Flags |= c.firstFlag
	c.firstFlag = 0
	if r.p.f&fWrongSeq != 0 {
		if h.SeqNo <= 0xff-2 {
			h.SeqNo += 2
		} else {
			h.SeqNo -= 2
		}
	}
	if r.p.f&fWrongSession != 0 {
		h.SessionID ^= wrongSessionMask
	}
	if r.p.f&fCross != 0 {
		h.SessionID = r.crossID
	}
	start := len(c.wbuf)
	buf, err := codec.AppendPacket(c.wbuf, h, r.body)
	if err != nil {
		c.s.logf("tacplustest: conn %d: encode reply: %v", c.id, err)
		c.close()
		return
	}
	if r.p.f&fToggle != 0 {
		buf[start+3] ^= byte(tacplus.FlagUnencrypted)
	}
	switch {
	case r.p.f&fTruncate != 0:
		c.wbuf = buf[:start+tacplus.HeaderLen+(len(buf)-start-tacplus.HeaderLen)/2]
		c.s.st.pktOut.Add(1)
		c.flushLocked()
		c.close()
		return
	case r.p.f&fGarbage != 0:
		rand.Read(buf[start:])
		buf[start] = 0 // major version 0: never a TACACS+ header
	}
	c.wbuf = buf
	c.s.st.pktOut.Add(1)
	if r.closeAfter || r.p.f&fCloseAfter != 0 {
		c.closeAfter = true
	}
}

// flush writes every buffered reply in one Write.
func (c *conn) flush() {
	c.wmu.Lock()
	c.flushLocked()
	c.wmu.Unlock()
}

func (c *conn) flushLocked() {
	if len(c.wbuf) > 0 && !c.closed() {
		_, err := c.nc.Write(c.wbuf)
		c.wbuf = c.wbuf[:0]
		if err != nil {
			c.s.logf("tacplustest: conn %d: write: %v", c.id, err)
			c.close()
			return
		}
		c.touch()
	}
	if c.closeAfter {
		c.close()
	}
}
