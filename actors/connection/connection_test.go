package connection

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/actors/session"
	"github.com/tacagent/tacagent/internal/actorkit"
	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitLimit = 5 * time.Second

// quietFor is how long a test waits to see that something does NOT happen (a packet the rules forbid).
const quietFor = 50 * time.Millisecond

var key = []byte("connection-test-key")

// peer is a scripted TACACS+ server on loopback: the test reads and writes packets itself.
type peer struct {
	t     *testing.T
	ln    net.Listener
	conns chan net.Conn
	codec *tacplus.Codec
}

func newPeer(t *testing.T, k []byte) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	codec, err := tacplus.NewCodec(tacplus.Options{Role: tacplus.RoleServer, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, ln: ln, conns: make(chan net.Conn, 4), codec: codec}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(p.conns)
				return
			}
			p.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *peer) accept() *peerConn {
	p.t.Helper()
	select {
	case c := <-p.conns:
		p.t.Cleanup(func() { c.Close() })
		return &peerConn{peer: p, c: c, rd: p.codec.NewReader(c)}
	case <-time.After(waitLimit):
		p.t.Fatal("no connection")
		return nil
	}
}

type peerConn struct {
	*peer
	c  net.Conn
	rd *tacplus.Reader
}

func (c *peerConn) read() tacplus.Header {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(waitLimit))
	h, _, err := c.rd.Next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return h
}

// quiet checks that nothing arrives for a while.
func (c *peerConn) quiet() {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(quietFor))
	var b [1]byte
	if n, err := c.c.Read(b[:]); n > 0 || !isTimeout(err) {
		c.t.Fatalf("the client sent something (%d bytes, %v) before the server's first reply (RFC 8907 section 4.3)", n, err)
	}
}

// pass answers h with PASS; flags are the reply's header flags.
func (c *peerConn) pass(h tacplus.Header, flags tacplus.HeaderFlag) {
	c.t.Helper()
	h.SeqNo++
	h.Flags = flags
	b, err := c.codec.Marshal(h, &tacplus.AuthenReply{Status: tacplus.AuthenStatusPass})
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// harness is a stand-in supervisor: it spawns the connection actor, records its failures and hands every
// message it gets to events.
type harness struct {
	t        *testing.T
	sys      *actor.ActorSystem
	events   *actorkit.Inbox
	replies  *actorkit.Inbox
	failures chan *Failure
	conn     *actor.PID
	metrics  *metrics.Metrics
}

type stand struct {
	props   *actor.Props
	h       *harness
	ready   chan *actor.PID
	restart bool // restart a failed connection actor (as the supervisor does a primary) instead of stopping it
}

func (s *stand) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		s.ready <- c.Spawn(s.props)
	case *messages.Returned, *messages.ConnectionIdle, *messages.Negotiated, *messages.Desync, *actor.Terminated:
		c.Send(s.h.events.PID(), m)
	}
}

func (s *stand) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, _ interface{}) {
	f, _ := reason.(*Failure)
	s.h.failures <- f
	if s.restart {
		sup.RestartChildren(child)
		return
	}
	sup.StopChildren(child)
}

func start(t *testing.T, addr string, mod func(*Config)) *harness {
	t.Helper()
	return startStand(t, addr, false, mod)
}

// startStand is start with a stand-in supervisor that restarts the failed connection actor when restart.
func startStand(t *testing.T, addr string, restart bool, mod func(*Config)) *harness {
	t.Helper()
	sys := actorkit.NewSystem(zerolog.Nop())
	h := &harness{t: t, sys: sys, events: actorkit.NewInbox(sys, 16), replies: actorkit.NewInbox(sys, 16), failures: make(chan *Failure, 4)}
	codec, err := tacplus.NewCodec(tacplus.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	var epochs atomic.Uint64
	h.metrics = metrics.Nop()
	m := h.metrics.Server(addr)
	cfg := Config{Addr: addr, Codec: codec, SingleConnect: true, Epochs: &epochs, Metrics: m, Log: zerolog.Nop(), DialTimeout: time.Second,
		NewSession: func(st *messages.StartSession, info SessionInfo) *session.Session {
			return session.New(session.Config{Start: st, SessionID: info.SessionID, Epoch: info.Epoch, Server: info.Server,
				UserTimeout: time.Minute, Metrics: m, Log: zerolog.Nop()})
		}}
	if mod != nil {
		mod(&cfg)
	}
	s := &stand{props: Props(cfg), h: h, ready: make(chan *actor.PID, 1), restart: restart}
	parent := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return s }))
	h.conn = <-s.ready
	t.Cleanup(func() {
		sys.Root.StopFuture(parent).Wait()
		h.events.Close()
		h.replies.Close()
		sys.Shutdown()
	})
	return h
}

var reqIDs atomic.Uint64

func (h *harness) login() {
	h.sys.Root.Send(h.conn, &messages.StartSession{ReplyTo: h.replies.PID(), Timeout: waitLimit,
		Req: &messages.Request{ID: reqIDs.Add(1), Authen: &messages.AuthenRequest{Action: tacplus.ActionLogin,
			Type: tacplus.AuthenTypePAP, Service: tacplus.ServiceLogin, User: "alice", Password: []byte("pw")}}})
}

func next[T any](t *testing.T, in *actorkit.Inbox) T {
	t.Helper()
	select {
	case m := <-in.C():
		v, ok := m.(T)
		if !ok {
			var zero T
			t.Fatalf("got %T %+v, want %T", m, m, zero)
		}
		return v
	case <-time.After(waitLimit):
		var zero T
		t.Fatalf("no %T within %v", zero, waitLimit)
		return zero
	}
}

func (h *harness) outcome() *messages.Outcome { return next[*messages.Outcome](h.t, h.replies) }

func (h *harness) noFailure() {
	h.t.Helper()
	select {
	case f := <-h.failures:
		h.t.Fatalf("connection failed: %v", f)
	default:
	}
}

// TestSingleConnectNegotiation: section 4.3. The first packet asks for single-connect and nothing else goes
// out before the server's first reply; once the server agreed, the next session goes on the same socket,
// without the flag (it is honoured in the first two packets only).
func TestSingleConnectNegotiation(t *testing.T) {
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), func(c *Config) { c.NegotiationWait = -1 })
	h.login()
	h.login()
	c := p.accept()
	first := c.read()
	if first.Flags&tacplus.FlagSingleConnect == 0 {
		t.Fatalf("first packet flags %v: single-connect not asked", first.Flags)
	}
	c.quiet()
	c.pass(first, tacplus.FlagSingleConnect)
	second := c.read()
	if second.Flags&tacplus.FlagSingleConnect != 0 || second.SessionID == first.SessionID {
		t.Fatalf("second packet %v", second)
	}
	c.pass(second, 0)
	for range 2 {
		if o := h.outcome(); o.Err != nil {
			t.Fatalf("outcome %v", o.Err)
		}
	}
	if n := next[*messages.Negotiated](t, h.events); !n.SingleConnect {
		t.Errorf("negotiated %+v", n)
	}
	h.noFailure()
}

// TestRefusedHandsBackQueued: the server's first reply lacks the flag: the queued request goes back to the
// supervisor for a connection of its own.
func TestRefusedHandsBackQueued(t *testing.T) {
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), func(c *Config) { c.NegotiationWait = -1 }) // the refusal, not the bound, hands it back
	h.login()
	h.login()
	c := p.accept()
	c.pass(c.read(), 0)
	if o := h.outcome(); o.Err != nil {
		t.Fatal(o.Err)
	}
	if n := next[*messages.Negotiated](t, h.events); n.SingleConnect {
		t.Errorf("negotiated %+v", n)
	}
	r := next[*messages.Returned](t, h.events)
	if r.Reason != messages.ReturnRefused || len(r.Starts) != 1 {
		t.Fatalf("returned %+v", r)
	}
	next[*messages.ConnectionIdle](t, h.events) // the socket served its one session and was closed
	h.noFailure()
}

// TestReplyThenCloseIsNotAFailure: a classic one-session server writes its reply and closes at once. The
// session has its answer; the close is normal, not a failure.
func TestReplyThenCloseIsNotAFailure(t *testing.T) {
	for range 20 { // the EOF races the reply's routing; repeat to cover both orders
		p := newPeer(t, key)
		h := start(t, p.ln.Addr().String(), nil)
		h.login()
		c := p.accept()
		c.pass(c.read(), 0)
		c.c.Close()
		if o := h.outcome(); o.Err != nil {
			t.Fatalf("outcome %v", o.Err)
		}
		next[*messages.Negotiated](t, h.events)
		next[*messages.ConnectionIdle](t, h.events)
		h.noFailure()
	}
}

// TestLostIsAFailure: the socket dies while a session waits: the session answers ErrConnectionLost (retryable,
// nothing was received) and only then does the actor fail, for its supervisor to restart it.
func TestLostIsAFailure(t *testing.T) {
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), nil)
	h.login()
	c := p.accept()
	c.read()
	c.c.Close()
	o := h.outcome()
	if !errors.Is(o.Err, tacplus.ErrConnectionLost) || !o.Retryable {
		t.Fatalf("outcome %v retryable=%v", o.Err, o.Retryable)
	}
	select {
	case f := <-h.failures:
		if f == nil || f.Dial {
			t.Fatalf("failure %v", f)
		}
	case <-time.After(waitLimit):
		t.Fatal("no failure")
	}
}

// TestDialFailure: nothing listens: queued requests get ErrUnreachable and the actor fails with Dial set.
func TestDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h := start(t, addr, nil)
	h.login()
	if o := h.outcome(); !errors.Is(o.Err, tacplus.ErrUnreachable) || !o.Retryable {
		t.Fatalf("outcome %v", o.Err)
	}
	if f := <-h.failures; f == nil || !f.Dial {
		t.Fatalf("failure %v", f)
	}
}

// TestKeyMismatchDrains: section 4.4. A reply that does not decode with our key ends its session with
// ErrBadSecret; new requests go back to the supervisor; the socket closes once the running sessions end.
func TestKeyMismatchDrains(t *testing.T) {
	p := newPeer(t, []byte("the-server-key"))
	h := start(t, p.ln.Addr().String(), nil)
	h.login()
	c := p.accept()
	c.pass(c.read(), tacplus.FlagSingleConnect)
	if o := h.outcome(); !errors.Is(o.Err, tacplus.ErrBadSecret) {
		t.Fatalf("outcome %v", o.Err)
	}
	next[*messages.Negotiated](t, h.events)
	next[*messages.ConnectionIdle](t, h.events)
	h.login() // after the drain the actor is idle: it dials again
	c2 := p.accept()
	c2.read()
	h.noFailure()
}

// TestTransientStops: a per-session connection stops once its session is done, even when the server agreed
// to single-connect.
func TestTransientStops(t *testing.T) {
	p := newPeer(t, key)
	h := start(t, p.ln.Addr().String(), func(c *Config) { c.Transient = true })
	h.login()
	c := p.accept()
	c.pass(c.read(), tacplus.FlagSingleConnect)
	if o := h.outcome(); o.Err != nil {
		t.Fatal(o.Err)
	}
	// Terminated is a system message: it may overtake the Negotiated the actor sent just before it stopped.
	// Wait for both, in either order.
	var negotiated, terminated bool
	for !negotiated || !terminated {
		switch m := next[any](t, h.events).(type) {
		case *messages.Negotiated:
			negotiated = true
		case *actor.Terminated:
			if !m.Who.Equal(h.conn) {
				t.Fatalf("terminated %v", m.Who)
			}
			terminated = true
		default:
			t.Fatalf("unexpected %T %+v", m, m)
		}
	}
	c.c.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := c.c.Read(make([]byte, 1)); err == nil {
		t.Fatal("socket still open")
	}
}

// TestPanickingSessionAnswers: a session that panics (here as it starts, and again as it is stopped: it
// has no metrics) is stopped, never restarted; its caller gets a typed error at once, the panic is counted
// (Config.OnPanic), nothing of the request reaches the server, and the connection goes on serving the
// next request.
func TestPanickingSessionAnswers(t *testing.T) {
	p := newPeer(t, key)
	var panics, made atomic.Int64
	h := start(t, p.ln.Addr().String(), func(c *Config) {
		normal := c.NewSession
		c.OnPanic = func() { panics.Add(1) }
		c.NewSession = func(st *messages.StartSession, info SessionInfo) *session.Session {
			if made.Add(1) == 1 {
				return session.New(session.Config{Start: st, SessionID: info.SessionID, Epoch: info.Epoch, Server: info.Server})
			}
			return normal(st, info)
		}
	})
	h.login()
	if o := h.outcome(); !errors.Is(o.Err, tacplus.ErrConnectionLost) || o.Retryable {
		t.Fatalf("outcome of the panicking session: %v (retryable %v), want a connection_lost that is not retried", o.Err, o.Retryable)
	}
	if n := panics.Load(); n != 1 {
		t.Fatalf("OnPanic called %d times, want 1", n)
	}
	first := p.accept() // the socket dialled for the panicking session carried nothing and was closed
	first.c.SetReadDeadline(time.Now().Add(waitLimit))
	var b [1]byte
	if n, err := first.c.Read(b[:]); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("the first socket: %d bytes, %v; want it closed without a packet", n, err)
	}
	h.login()
	c := p.accept()
	c.pass(c.read(), tacplus.FlagSingleConnect)
	if o := h.outcome(); o.Err != nil {
		t.Fatalf("the next request: %v", o.Err)
	}
	h.noFailure()
}
