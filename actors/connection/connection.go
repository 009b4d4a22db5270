package connection

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/actors/session"
	"github.com/tacagent/tacagent/internal/actorkit"
	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
)

// Defaults for Config fields left zero.
const (
	DefaultDialTimeout = 2 * time.Second
	DefaultIdleTimeout = 10 * time.Second // below tacquito's 15 s, so that we close first
	DefaultMaxInFlight = 1024
	// DefaultNegotiationWait is NegotiationWait's default (issue 12 point 2).
	DefaultNegotiationWait = 50 * time.Millisecond
)

// Negotiation is a remembered single-connect answer.
type Negotiation uint8

// The remembered answers.
const (
	NegotiationUnknown Negotiation = iota
	NegotiationAgreed
	NegotiationRefused
)

// SessionInfo is what a new session needs to know about its connection.
type SessionInfo struct {
	SessionID uint32
	Epoch     uint64
	Server    string
}

// Config configures one connection actor. Addr, Codec, Epochs and NewSession are required.
type Config struct {
	Addr        string         // "host:port"; IPv6 literals in brackets
	Codec       *tacplus.Codec // keyed or unencrypted, role client
	DialTimeout time.Duration  // per connect attempt; default DefaultDialTimeout
	SourceAddr  string         // optional local IP to dial from
	IdleTimeout time.Duration  // close after this long without sessions; default DefaultIdleTimeout, <0 never
	// NegotiationWait bounds how long a request waits behind a pending single-connect negotiation before it
	// is handed back (ReturnNegotiation) to run on a connection of its own; default
	// DefaultNegotiationWait, <0 no bound.
	NegotiationWait time.Duration
	// Negotiation is what the supervisor remembers of this server's last single-connect answer (until a
	// reload or a failure). NegotiationAgreed sends queued requests at once on a new socket, the first
	// still asking for single-connect, instead of holding them for the reply (issue 12 point 2). Only the
	// instance spawned first holds it: an actor restarted after a Failure starts from NegotiationUnknown.
	Negotiation   Negotiation
	MaxInFlight   int  // sessions at once on this socket; more queue; default DefaultMaxInFlight
	SingleConnect bool // ask for single-connect mode (RFC 8907 section 4.3)
	// Transient connections serve the requests they are started with (per-session fallback) and stop when
	// their socket closes; they are never restarted.
	Transient bool
	// Extra marks a long-lived connection other than the server's first (connections_per_server): the
	// connection state and single_connect gauges are left to the first.
	Extra   bool
	DialNow bool            // dial in Started even with nothing queued (a probe after a restart)
	Epochs  *atomic.Uint64  // shared counter: every socket gets a new epoch
	Metrics *metrics.Server // per-server collectors
	Log     zerolog.Logger
	// NewSession builds the session for a request; a session actor, a child of the connection actor, runs it.
	NewSession func(start *messages.StartSession, info SessionInfo) *session.Session
	// OnPanic is called when a session panics (the agent counts it); the session is stopped, never
	// restarted, and answers its caller. It may be called from any goroutine.
	OnPanic func()
	// Dial opens the socket; default a net.Dialer with DialTimeout and SourceAddr. TLS plugs in here.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

var (
	errRefused     = errors.New("server did not agree to single-connect (RFC 8907 section 4.3)")
	errRestart     = errors.New("connection restarting")
	errRetired     = errors.New("connection retired")
	errNegotiation = errors.New("single-connect negotiation pending or unanswered (RFC 8907 section 4.3)")
)

// Failure is the panic value a connection actor fails with; the supervisor's HandleFailure reads it.
type Failure struct {
	Server string
	Err    error
	Dial   bool // the socket could not be opened at all
}

func (f *Failure) Error() string {
	if f.Dial {
		return fmt.Sprintf("connect to %s: %v", f.Server, f.Err)
	}
	return fmt.Sprintf("connection to %s lost: %v", f.Server, f.Err)
}

func (f *Failure) Unwrap() error { return f.Err }

// ExpectedFailure marks the panic as deliberate (actorkit.Expected): it is how the actor hands a dead
// socket to its supervisor, not a bug, so it is not logged with a stack.
func (f *Failure) ExpectedFailure() {}

type state uint8

const (
	stIdle        state = iota // no socket; dial on demand
	stDialing                  // dial goroutine running
	stNegotiating              // first packet may carry the single-connect flag; others wait for the reply
	stOpen                     // running sessions
	stDraining                 // no new sessions; close when the running ones end
	stFailing                  // socket dead; waiting for the sessions to acknowledge ConnectionLost
)

var stateNames = [...]string{"idle", "dialing", "negotiating", "open", "draining", "failing"}

func (s state) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Internal messages from the socket goroutines and timers, tagged with the epoch they belong to.
type (
	dialResult struct {
		actorkit.QuietMessage
		epoch uint64
		conn  net.Conn
		err   error
	}
	// inbound holds the packets the reader decoded from one read of the socket, in order.
	inbound struct {
		actorkit.QuietMessage
		epoch uint64
		pkts  []packet
	}
	socketDone struct {
		actorkit.QuietMessage
		epoch uint64
		err   error
	}
	idleTimeout struct {
		actorkit.QuietMessage
		gen uint64
	}
	negotiationWait struct {
		actorkit.QuietMessage
		epoch uint64
	}
)

type route struct {
	sid      uint32
	c        *child // the session actor running it (hosted.go)
	reqID    uint64
	deadline time.Time          // the request's absolute deadline; zero for none
	req      *messages.Request  // for Gone: the caller gave up
	ptype    tacplus.PacketType // the session's packet type, known from its first packet
	seq      uint8              // seq_no of the last packet the session sent
	awaiting bool               // the server owes the session a reply (seq+1)
	// aborted: the session's last packet was a CONTINUE with ABORT. RFC 8907 section 5.4.3 lets the server
	// end the session without a reply, but deployed servers answer it (tacquito: FAIL "ending per client
	// request"): one reply at seq+1 of the session's type is tolerated and dropped, never routed.
	aborted bool
	// The session's timer (hosted.go): when it fires, its generation, its index in the heap (-1: unarmed).
	at   time.Time
	gen  uint64
	hidx int
}

// tomb remembers a session that ended on this socket, so that a later packet for it is recognised (and
// treated as a desync) rather than mistaken for nothing. late is set when the session ended while the
// server held the turn without an ABORT going out (a timeout, or a cancellation while waiting): the server
// still owes one reply, at seq+1, which is dropped once; anything else is a desync. It is set as well after
// a CONTINUE with ABORT, which some servers answer (route.aborted).
type tomb struct {
	seq   uint8
	ptype tacplus.PacketType
	late  bool
}

// maxTombs bounds the tombstones kept per socket; the oldest go first.
const maxTombs = 256

// packet is one decoded packet, or the error its body gave.
type packet struct {
	h    tacplus.Header
	body tacplus.Body
	size int
	err  error
}

// Actor is the connection actor. Create it with Props.
type Actor struct {
	cfg   Config
	timer actorkit.Timer
	log   zerolog.Logger
	self  *actor.PID
	root  *actor.RootContext
	ctx   actor.Context
	tm    sessionTimers
	// Session actors (hosted.go): the props they are spawned with, and the idle ones kept for reuse.
	sprops *actor.Props
	free   []*child
	// down: the actor is stopping or restarting; what its session actors send as they stop is ignored.
	down bool

	state      state
	epoch      uint64
	conn       net.Conn
	w          *writer
	wg         sync.WaitGroup // the reader and writer goroutines of the current socket
	cancelDial context.CancelFunc

	flagSent  bool // the single-connect flag went out on this socket
	multiplex bool // the server agreed to single-connect
	served    int  // sessions started on this socket (without multiplexing, at most one)
	lost      int  // sessions that ended with ConnectionLost on this socket
	closeErr  error

	routes  map[uint32]*route // session_id -> session
	tombs   map[uint32]tomb   // sessions that ended on this socket
	tombQ   []uint32          // tombs in age order, for the bound
	byReq   map[uint64]uint32
	queue   []*messages.StartSession
	idleGen uint64
	negWait bool // a negotiationWait timer is armed
	retired bool // messages.Retire: no new sessions; stop once the running ones end
	// unagreed: sessions went out at once on a remembered agreement the server then refused; losing them
	// to the server's close is our doing, not the server's failure.
	unagreed bool
}

// Props returns the props of a connection actor with cfg. Defaults are applied here.
func Props(cfg Config, opts ...actor.PropsOption) *actor.Props {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.NegotiationWait == 0 {
		cfg.NegotiationWait = DefaultNegotiationWait
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: cfg.DialTimeout}
		if cfg.SourceAddr != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(cfg.SourceAddr)}
		}
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	// A session actor is never restarted: a restart would replay its START under the same session_id. Its
	// own Receive recovers a session's panic (hosted.go); anything that still escapes stops it, and stopping
	// makes it answer its caller (sessionActor's Stopping case).
	opts = append([]actor.PropsOption{actor.WithSupervisor(stopSessions)}, opts...)
	// A restart follows a Failure, and the supervisor forgets the server's negotiation on a failure
	// (issue 12 point 2): the restarted instance must not keep the spawn-time memory, it negotiates afresh.
	// So only the first instance these props produce gets cfg.Negotiation; one actor is spawned per Props.
	var produced atomic.Bool
	return actor.PropsFromProducer(func() actor.Actor {
		c := cfg
		if produced.Swap(true) {
			c.Negotiation = NegotiationUnknown
		}
		return &Actor{cfg: c}
	}, opts...)
}

var stopSessions = actor.NewOneForOneStrategy(0, 0, func(interface{}) actor.Directive { return actor.StopDirective })

// Receive implements actor.Actor.
func (a *Actor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.init(ctx)
		if a.cfg.DialNow {
			a.dial(ctx)
		}
	case *fromSession:
		a.fromSession(ctx, m)
	case *messages.StartSession:
		if m.Take() { // false: the supervisor withdrew it while this actor waited out a restart backoff
			a.start(ctx, m)
		}
	case *messages.UserInput:
		// The answer to a prompt goes to the session actor (Prompt.Session); one sent here instead is
		// passed on to the session running request ReqID.
		if sid, ok := a.byReq[m.ReqID]; ok {
			a.deliver(a.routes[sid], m)
		} else {
			clear(m.Text) // the session is gone; the answer, often a password, is wiped
		}
	case *timerTick:
		a.timersFired()
	case *inbound:
		for i := range m.pkts {
			a.inbound(ctx, m.epoch, &m.pkts[i])
		}
	case *dialResult:
		a.dialed(ctx, m)
	case *socketDone:
		if m.epoch == a.epoch && a.conn != nil {
			a.socketClosed(ctx, m.err, true)
		}
	case *messages.Abort:
		if sid, ok := a.byReq[m.ReqID]; ok {
			a.deliver(a.routes[sid], m)
		} else {
			a.cancelQueued(ctx, m.ReqID)
		}
	case *messages.Retire:
		a.retire(ctx)
	case *messages.ConnectionStatus:
		ctx.Respond(&messages.ConnectionCounts{Server: a.cfg.Addr, Epoch: a.epoch, State: a.state.String(),
			InFlight: len(a.routes), Queued: len(a.queue), Multiplex: a.multiplex, Retired: a.retired})
	case *negotiationWait:
		a.negWait = false
		a.negotiationTimeout(ctx, m.epoch)
	case *idleTimeout:
		if m.gen == a.idleGen && (a.state == stOpen || a.state == stNegotiating) && len(a.routes) == 0 && len(a.queue) == 0 {
			a.log.Debug().Msg("closing idle connection")
			a.closeSocket("idle")
			a.becomeIdle(ctx, "idle")
		}
	case *actor.Terminated:
		a.terminated(m.Who)
	case *actor.Restarting:
		// The library stops every child next: each session actor still running a session answers its
		// caller with a typed error as it stops (sessionActor, Stopping). Nothing they send back counts.
		a.down = true
		a.tm.stop()
		a.closeSocket("restarted")
		a.returnQueued(ctx, messages.ReturnRestart, errRestart)
	case *actor.Stopping:
		a.down = true
		a.tm.stop()
		a.closeSocket("stopped")
		a.answerQueued(ctx, tacplus.ErrConnectionLost, "connection stopped")
	}
}

func (a *Actor) init(ctx actor.Context) {
	a.timer = actorkit.NewTimer(ctx.ActorSystem().Root)
	a.self = ctx.Self()
	a.root = ctx.ActorSystem().Root
	a.ctx = ctx
	a.log = a.cfg.Log.With().Str("server", a.cfg.Addr).Logger()
	a.routes = make(map[uint32]*route)
	a.tombs = make(map[uint32]tomb)
	a.byReq = make(map[uint64]uint32)
	a.setState(metrics.StateDown)
}

// start runs a request now, or queues it behind the dial, the negotiation or the in-flight limit.
func (a *Actor) start(ctx actor.Context, m *messages.StartSession) {
	if a.retired {
		ctx.Send(ctx.Parent(), &messages.Returned{Server: a.cfg.Addr, Starts: []*messages.StartSession{m},
			Reason: messages.ReturnRetired, Err: errRetired})
		return
	}
	switch a.state {
	case stDraining:
		why := messages.ReturnBadSecret
		if errors.Is(a.closeErr, errRefused) {
			why = messages.ReturnRefused
		}
		ctx.Send(ctx.Parent(), &messages.Returned{Server: a.cfg.Addr, Starts: []*messages.StartSession{m},
			Reason: why, Err: a.closeErr})
		return
	case stFailing:
		// Queued: settle hands the queue back for the restart, or dials again when nobody lost work.
	case stOpen:
		if !a.multiplex && a.served > 0 {
			ctx.Send(ctx.Parent(), &messages.Returned{Server: a.cfg.Addr, Starts: []*messages.StartSession{m},
				Reason: messages.ReturnRefused, Err: errRefused})
			return
		}
		if len(a.routes) < a.cfg.MaxInFlight && len(a.queue) == 0 {
			a.spawn(ctx, m)
			return
		}
	case stNegotiating:
		if a.served == 0 || (a.cfg.Negotiation == NegotiationAgreed && len(a.routes) < a.cfg.MaxInFlight && len(a.queue) == 0) {
			a.spawn(ctx, m)
			return
		}
	}
	a.queue = append(a.queue, m)
	a.cfg.Metrics.Queued.Inc()
	if a.state == stIdle {
		a.dial(ctx)
	}
	if (a.state == stDialing || a.state == stNegotiating) && !a.negWait && a.cfg.NegotiationWait > 0 && a.cfg.Negotiation != NegotiationAgreed {
		a.negWait = true
		a.timer.After(a.cfg.NegotiationWait, a.self, &negotiationWait{epoch: a.epoch})
	}
}

// retire stops the connection from taking new sessions (issue 12 point 9). Queued requests go back; the
// socket closes and the actor stops when the running sessions have ended (at once when there are none).
func (a *Actor) retire(ctx actor.Context) {
	if a.retired {
		return
	}
	a.retired = true
	a.log.Debug().Int("sessions", len(a.routes)).Msg("connection retired")
	a.returnQueued(ctx, messages.ReturnRetired, errRetired)
	if len(a.routes) == 0 && a.state != stFailing {
		a.closeSocket("retired")
		a.state = stIdle
		a.setState(metrics.StateDown)
		ctx.Stop(ctx.Self())
	}
}

// negotiationTimeout hands back the requests that waited NegotiationWait behind a pending negotiation
// (issue 12 point 2): a server slow to answer the first request (one that delays its FAIL replies, say)
// must not hold the others. While dialing, the first queued request stays: it carries the negotiation.
func (a *Actor) negotiationTimeout(ctx actor.Context, epoch uint64) {
	if epoch != a.epoch || len(a.queue) == 0 {
		return
	}
	switch a.state {
	case stNegotiating:
		a.returnQueued(ctx, messages.ReturnNegotiation, errNegotiation)
	case stDialing:
		if len(a.queue) > 1 {
			rest := a.queue[1:]
			a.queue = a.queue[:1:1]
			a.cfg.Metrics.Queued.Sub(float64(len(rest)))
			if live := a.answerExpired(ctx, rest); len(live) > 0 {
				ctx.Send(ctx.Parent(), &messages.Returned{Server: a.cfg.Addr, Starts: live, Reason: messages.ReturnNegotiation, Err: errNegotiation})
			}
		}
	}
}

func (a *Actor) dial(ctx actor.Context) {
	if a.state != stIdle {
		return
	}
	a.state = stDialing
	a.epoch = a.cfg.Epochs.Add(1)
	a.setState(metrics.StateConnecting)
	// The whole connect, TLS handshake included, is bounded by DialTimeout; the per-server metrics ride in
	// the context for a TLS dialer (tlsconf).
	dctx, cancel := context.WithTimeout(metrics.NewContext(context.Background(), a.cfg.Metrics), a.cfg.DialTimeout)
	a.cancelDial = cancel
	root, self, epoch, dialFn, addr := ctx.ActorSystem().Root, ctx.Self(), a.epoch, a.cfg.Dial, a.cfg.Addr
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer cancel()
		c, err := dialFn(dctx, addr)
		root.Send(self, &dialResult{epoch: epoch, conn: c, err: err})
	}()
}

func (a *Actor) dialed(ctx actor.Context, m *dialResult) {
	if m.epoch != a.epoch || a.state != stDialing {
		if m.conn != nil {
			m.conn.Close()
		}
		return
	}
	a.cancelDial = nil
	if m.err != nil {
		a.state = stIdle
		a.cfg.Metrics.Failures.Inc()
		if errors.Is(m.err, context.DeadlineExceeded) || isTimeout(m.err) {
			a.cfg.Metrics.Timeouts.Inc()
		}
		a.setState(metrics.StateDown)
		a.log.Warn().Err(m.err).Msg("connect failed")
		a.answerQueued(ctx, tacplus.ErrUnreachable, "connect failed: "+m.err.Error())
		panic(&Failure{Server: a.cfg.Addr, Err: m.err, Dial: true})
	}
	a.conn = m.conn
	a.w = newWriter()
	a.state = stNegotiating
	a.flagSent, a.multiplex, a.served, a.lost, a.closeErr, a.unagreed = false, false, 0, 0, nil, false
	clear(a.tombs)
	a.tombQ = a.tombQ[:0]
	a.cfg.Metrics.Opens.Inc()
	if !a.cfg.Transient {
		a.cfg.Metrics.ConnsOpen.Inc()
	}
	a.setState(metrics.StateUp)
	a.setSingleConnect(0)
	a.log.Debug().Uint64("epoch", a.epoch).Msg("connected")
	root, self, epoch := ctx.ActorSystem().Root, ctx.Self(), a.epoch
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		a.w.run(m.conn, func(err error) { root.Send(self, &socketDone{epoch: epoch, err: err}) })
	}()
	go func() {
		defer a.wg.Done()
		a.read(root, self, epoch, m.conn)
	}()
	ctx.Send(ctx.Parent(), &messages.Connected{Server: a.cfg.Addr, Epoch: a.epoch})
	// The first queued request goes now; the rest wait for the negotiation (section 4.3).
	if len(a.queue) > 0 {
		first := a.queue[0]
		a.queue = a.queue[1:]
		a.cfg.Metrics.Queued.Dec()
		a.spawn(ctx, first)
		// A server remembered to agree gets the rest at once (the first packet still asks).
		for a.cfg.Negotiation == NegotiationAgreed && len(a.queue) > 0 && len(a.routes) < a.cfg.MaxInFlight {
			next := a.queue[0]
			a.queue[0] = nil
			a.queue = a.queue[1:]
			a.cfg.Metrics.Queued.Dec()
			a.spawn(ctx, next)
		}
	} else {
		a.armIdle()
	}
}

// readBuffer is the reader goroutine's buffer: one Read brings in every packet the server has sent so far
// (a reply is typically under 100 bytes; a per-session connection pays for the buffer too).
const readBuffer = 4 << 10

// read is the reader goroutine: it frames and decodes packets and sends them to the actor, every packet
// that arrived in one read together in one message. It never touches the actor's state.
func (a *Actor) read(root *actor.RootContext, self *actor.PID, epoch uint64, conn net.Conn) {
	r := a.cfg.Codec.NewBufferedReader(conn, readBuffer)
	for {
		batch := &inbound{epoch: epoch}
		for {
			h, body, err := r.Next()
			if err != nil {
				if len(batch.pkts) > 0 {
					root.Send(self, batch)
				}
				root.Send(self, &socketDone{epoch: epoch, err: err})
				return
			}
			p := packet{h: h, size: tacplus.HeaderLen + len(body)}
			b, err := a.cfg.Codec.NewBody(h)
			if err == nil {
				err = a.cfg.Codec.DecodeBody(h, body, b)
			}
			p.body, p.err = b, err
			batch.pkts = append(batch.pkts, p)
			if !r.Ready() {
				break
			}
		}
		root.Send(self, batch)
	}
}

func (a *Actor) spawn(ctx actor.Context, m *messages.StartSession) {
	if dl := m.Req.Deadline; !dl.IsZero() && !time.Now().Before(dl) {
		// The caller is gone: nothing of this request may reach the server.
		a.replyExpired(ctx, m)
		return
	}
	if m.Req.GaveUp() {
		// The caller cancelled; its Cancel is on the way through the supervisor. Nothing is sent.
		a.reply(ctx, m, tacplus.ErrAborted, "the caller gave up before the request was sent; it never was", false)
		return
	}
	sid, err := a.newSessionID()
	if err != nil {
		a.reply(ctx, m, tacplus.ErrProtocol, err.Error(), true)
		return
	}
	s := a.cfg.NewSession(m, SessionInfo{SessionID: sid, Epoch: a.epoch, Server: a.cfg.Addr})
	r := &route{sid: sid, reqID: m.Req.ID, deadline: m.Req.Deadline, req: m.Req, hidx: -1}
	a.routes[sid] = r
	a.byReq[m.Req.ID] = sid
	a.served++
	a.idleGen++
	a.runOn(ctx, r, s, m)
}

// newSessionID draws random ids until one is unused on this connection (section 4.1: session_id is random
// and identifies the session on the connection).
func (a *Actor) newSessionID() (uint32, error) {
	for range 8 {
		id, err := tacplus.NewSessionID()
		if err != nil {
			return 0, err
		}
		_, used := a.routes[id]
		if _, dead := a.tombs[id]; !used && !dead {
			return id, nil
		}
	}
	return 0, errors.New("no free session id after 8 draws")
}

func (a *Actor) outbound(ctx actor.Context, m *messages.Outbound) {
	r, ok := a.routes[m.Header.SessionID]
	if !ok || m.Epoch != a.epoch || a.conn == nil || a.state == stFailing {
		return // a session of an older socket, or a session that already ended
	}
	if ((!r.deadline.IsZero() && !time.Now().Before(r.deadline)) || r.req.GaveUp()) && !isAbort(m.Body) {
		// The caller's deadline passed, or it cancelled: the packet is never written. The session's own
		// timer (armed at the deadline at the latest) or the Cancel on its way ends it. An ABORT still
		// goes: it tells the server the session is over and carries nothing of the request.
		return
	}
	h := m.Header
	if a.cfg.SingleConnect && !a.flagSent && a.state == stNegotiating {
		h.Flags |= tacplus.FlagSingleConnect
	}
	a.flagSent = true
	n, err := a.w.add(a.cfg.Codec, h, m.Body)
	if err != nil {
		// The session built a packet the codec refuses (a text or length rule): it fails, not the socket.
		a.deliver(r, &messages.Inbound{Header: h, Err: err})
		return
	}
	r.ptype, r.seq = h.Type, h.SeqNo
	// After a CONTINUE with the ABORT flag the server owes nothing (RFC 8907 section 5.4.3); one answer
	// to it is tolerated (route.aborted).
	r.aborted = isAbort(m.Body)
	r.awaiting = !r.aborted
	a.cfg.Metrics.PacketsSent.Inc()
	a.cfg.Metrics.BytesSent.Add(float64(n))
}

func isAbort(b tacplus.Body) bool {
	c, ok := b.(*tacplus.AuthenContinue)
	return ok && c.Flags&tacplus.FlagAbort != 0
}

func (a *Actor) inbound(ctx actor.Context, epoch uint64, m *packet) {
	if epoch != a.epoch || a.conn == nil || a.state == stFailing {
		return
	}
	a.cfg.Metrics.PacketsReceived.Inc()
	a.cfg.Metrics.BytesReceived.Add(float64(m.size))
	if m.err != nil && !errors.Is(m.err, tacplus.ErrBadSecret) {
		// A body that breaks the codec's rules: the stream can no longer be trusted (issue 12 point 7).
		a.desync(ctx, m.err, true)
		return
	}
	r, ok := a.routes[m.h.SessionID]
	if !ok {
		if t, dead := a.tombs[m.h.SessionID]; dead && t.late && m.h.SeqNo == t.seq+1 && m.h.Type == t.ptype {
			// The one reply the server still owed a session that gave up while waiting, or the one answer
			// to its ABORT: expected, dropped.
			t.late = false
			a.tombs[m.h.SessionID] = t
			a.log.Debug().Uint32("session", m.h.SessionID).Msg("late reply for an ended session dropped")
			return
		}
		// A session_id no live session has on this socket (never used, or a session that already had its
		// last reply): the server is answering someone else. Nothing it says on this socket can be trusted.
		a.desync(ctx, badPacket(tacplus.ReasonSession, "session_id", "0x%08x matches no session waiting on this connection", m.h.SessionID), true)
		return
	}
	if r.aborted && m.h.SeqNo == r.seq+1 && m.h.Type == r.ptype {
		// A server that answers the session's ABORT (tacquito does): the session is over; dropped once.
		r.aborted = false
		a.log.Debug().Uint32("session", m.h.SessionID).Msg("reply to an ABORT dropped")
		return
	}
	if err := r.check(m.h); err != nil {
		// The packet names a live session but is not the reply it is owed (out of turn, wrong seq_no or
		// type). It goes to that session, which refuses it and ends with ErrProtocol: it did get an
		// answer, a bad one, so it is not retried; the session counts it. The others lose the connection.
		a.deliver(r, &messages.Inbound{Header: m.h, Body: m.body})
		a.desync(ctx, err, false)
		return
	}
	r.awaiting = false
	if a.state == stNegotiating {
		a.negotiated(ctx, m.h.Flags&tacplus.FlagSingleConnect != 0)
	}
	if m.err != nil {
		a.cfg.Metrics.BadPacket(tacplus.ReasonOf(m.err).String())
		if a.state != stFailing && a.state != stDraining {
			// Section 4.4: a key mismatch is a connection-level error. Running sessions may finish; nothing
			// new goes on this connection.
			a.log.Error().Err(m.err).Msg("key mismatch: draining connection")
			a.closeErr = m.err
			a.state = stDraining
			a.returnQueued(ctx, messages.ReturnBadSecret, m.err)
		}
	}
	a.deliver(r, &messages.Inbound{Header: m.h, Body: m.body, Err: m.err})
	a.settle(ctx)
}

// check reports whether h is the reply the session is owed: the server holds the turn, and the packet
// has the session's type and the next seq_no (RFC 8907 section 4.1). The version is the session's to judge
// (an ERROR reply may carry another minor version, section 5.4.1); a version the session refuses ends the
// connection too (SessionEnded.Desync).
func (r *route) check(h tacplus.Header) error {
	switch {
	case !r.awaiting:
		return badPacket(tacplus.ReasonSeq, "seq_no", "%d for session 0x%08x, which is not waiting for a reply", h.SeqNo, h.SessionID)
	case h.Type != r.ptype:
		return badPacket(tacplus.ReasonType, "type", "%s packet for a %s session", h.Type, r.ptype)
	case h.SeqNo != r.seq+1:
		return badPacket(tacplus.ReasonSeq, "seq_no", "%d, want %d (RFC 8907 section 4.1)", h.SeqNo, r.seq+1)
	}
	return nil
}

func badPacket(r tacplus.Reason, field, format string, args ...any) error {
	return &tacplus.DecodeError{Reason: r, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// desync ends a connection whose packets can no longer be matched exactly to its sessions (issue 12 point
// 1): every session gets ConnectionLost with an ErrProtocol cause, the reason is counted in bad_packets,
// the supervisor is told (it stops multiplexing to the server for a while), and the socket closes.
func (a *Actor) desync(ctx actor.Context, cause error, count bool) {
	reason := tacplus.ReasonOf(cause)
	if reason == 0 {
		reason = tacplus.ReasonSession
	}
	err := &tacplus.Error{Class: tacplus.ErrProtocol, Server: a.cfg.Addr, State: "connection " + a.state.String(),
		Msg: "connection desynchronised, closing it", Err: cause}
	a.log.Warn().Err(cause).Str("reason", reason.String()).Int("sessions", len(a.routes)).Msg("connection desynchronised: failing its sessions")
	ctx.Send(ctx.Parent(), &messages.Desync{Server: a.cfg.Addr, Epoch: a.epoch, Reason: reason.String()})
	a.socketClosed(ctx, err, count)
}

// negotiated applies the server's answer to the single-connect flag: section 4.3 honours it only in the
// first reply of a connection.
func (a *Actor) negotiated(ctx actor.Context, agreed bool) {
	a.multiplex = a.cfg.SingleConnect && agreed
	a.state = stOpen
	if a.multiplex {
		a.setSingleConnect(1)
	}
	ctx.Send(ctx.Parent(), &messages.Negotiated{Server: a.cfg.Addr, Epoch: a.epoch, SingleConnect: a.multiplex})
	if !a.multiplex {
		a.returnQueued(ctx, messages.ReturnRefused, errRefused)
		if len(a.routes) > 1 {
			// Sessions went out at once on the strength of a remembered agreement the server no longer
			// gives: they may finish (or be lost to a close, and retried); nothing new goes here.
			a.log.Info().Int("sessions", len(a.routes)).Msg("single-connect no longer agreed: draining the sessions sent at once")
			a.closeErr = errRefused
			a.state = stDraining
			a.unagreed = true
		}
		return
	}
	a.pump(ctx)
}

// pump starts queued requests while there is room.
func (a *Actor) pump(ctx actor.Context) {
	for len(a.queue) > 0 && len(a.routes) < a.cfg.MaxInFlight && a.state == stOpen && a.multiplex {
		next := a.queue[0]
		a.queue[0] = nil
		a.queue = a.queue[1:]
		a.cfg.Metrics.Queued.Dec()
		a.spawn(ctx, next)
	}
}

func (a *Actor) sessionEnded(ctx actor.Context, m *messages.SessionEnded) {
	if m.Lost {
		a.lost++
		a.cfg.Metrics.ConnectionLost.Inc()
	}
	a.forget(m.SessionID)
	if m.Desync != "" && a.conn != nil && a.state != stFailing {
		// The session refused a packet the connection routed to it (a version, a status or a body the
		// session's rules forbid): the stream is in doubt, as for a misrouted packet.
		// The session counted the packet under its reason already.
		a.desync(ctx, badPacket(reasonByName(m.Desync), "session", "session 0x%08x refused its reply", m.SessionID), false)
		return
	}
	if m.TimedOut && a.state == stNegotiating {
		// The server never answered the connection's first packet (RFC 8907 section 4.3: nothing else may
		// go out before that reply). The requests queued behind it must not wait for their callers'
		// deadlines: they are answered as retryable timeouts, so the supervisor moves them to the next
		// server, and the silent socket is closed.
		a.log.Warn().Msg("no reply to the connection's first packet: closing it, queued requests fail over")
		a.answerQueued(ctx, tacplus.ErrTimeout, "the server did not answer the connection's first packet")
		if len(a.routes) == 0 {
			a.closeSocket("negotiation_timeout")
			a.becomeIdle(ctx, "negotiation_timeout")
			return
		}
	}
	if a.state == stNegotiating && len(a.routes) == 0 && a.conn != nil {
		// The first session ended without a reply (its caller gave up, it was aborted or stopped): the
		// negotiation ends with it, unanswered (issue 12 point 2). The socket still owes that session a
		// reply and learnt nothing, so it closes; queued requests go back to run on connections of their
		// own, and nothing is marked refused.
		a.returnQueued(ctx, messages.ReturnNegotiation, errNegotiation)
		a.closeSocket("negotiation_ended")
		a.becomeIdle(ctx, "negotiation_ended")
		return
	}
	a.settle(ctx)
}

// reasonByName maps a bad-packet reason name back to the Reason (ReasonSession when unknown).
func reasonByName(name string) tacplus.Reason {
	for _, r := range tacplus.Reasons() {
		if r.String() == name {
			return r
		}
	}
	return tacplus.ReasonSession
}

func (a *Actor) forget(sid uint32) {
	r, ok := a.routes[sid]
	if !ok {
		return
	}
	a.tm.remove(r)
	delete(a.routes, sid)
	delete(a.byReq, r.reqID)
	a.release(a.ctx, r.c)
	if len(a.tombQ) >= maxTombs {
		delete(a.tombs, a.tombQ[0])
		a.tombQ = a.tombQ[1:]
	}
	a.tombs[sid] = tomb{seq: r.seq, ptype: r.ptype, late: r.awaiting || r.aborted}
	a.tombQ = append(a.tombQ, sid)
}

// settle moves the state machine on once sessions have ended: start queued work, close a drained socket,
// fail a lost one, or arm the idle timer.
func (a *Actor) settle(ctx actor.Context) {
	if len(a.routes) > 0 {
		a.pump(ctx)
		return
	}
	if a.retired && (a.state != stFailing || a.lost == 0) {
		a.closeSocket("retired")
		a.state = stIdle
		a.setState(metrics.StateDown)
		ctx.Stop(ctx.Self())
		return
	}
	switch a.state {
	case stFailing:
		err, lost := a.closeErr, a.lost
		a.closeSocket("lost")
		a.state = stIdle
		if lost > 0 && !a.unagreed {
			// Some session lost its work: a failure, so the supervisor restarts this actor with backoff.
			// Requests that arrived meanwhile were never sent; they go back to wait for the restart.
			a.log.Warn().Err(err).Int("sessions_lost", lost).Msg("connection lost")
			a.returnQueued(ctx, messages.ReturnRestart, errRestart)
			panic(&Failure{Server: a.cfg.Addr, Err: err})
		}
		// Every session had its answer before the socket closed (a server that replies and closes, as
		// classic one-session servers do): a normal close.
		a.becomeIdle(ctx, "closed")
	case stDraining:
		a.closeSocket("drained")
		a.becomeIdle(ctx, "drained")
	case stOpen:
		if (!a.multiplex && a.served > 0) || (a.cfg.Transient && len(a.queue) == 0) {
			// One connection per session, or a transient connection with nothing left to do (even one
			// whose server agreed to single-connect): this socket is done.
			a.closeSocket("session_done")
			a.becomeIdle(ctx, "session_done")
			return
		}
		a.pump(ctx)
		if len(a.routes) == 0 {
			a.armIdle()
		}
	}
}

// socketClosed handles the end of the socket: EOF, a reset, a write error or a framing error.
// count says whether a bad packet behind err is still to be counted in bad_packets.
func (a *Actor) socketClosed(ctx actor.Context, err error, count bool) {
	reason := closeReason(err)
	if count && reason != "eof" && tacplus.ReasonOf(err) != 0 {
		a.cfg.Metrics.BadPacket(tacplus.ReasonOf(err).String())
	}
	if len(a.routes) == 0 && len(a.queue) == 0 {
		// Nobody was waiting: a server closing an idle connection, or the close after a per-session
		// connection's only session. Not a failure.
		a.log.Debug().Err(err).Msg("server closed connection")
		a.closeSocket(reason)
		a.becomeIdle(ctx, reason)
		return
	}
	// Sessions still have routes. Some may already hold their final reply (it was read before the EOF) and
	// are about to report SessionEnded; those ignore the notice. Whether this was a failure is known only
	// when all have ended: settle counts those that ended Lost. Queued requests stay queued until then.
	a.log.Debug().Err(err).Int("sessions", len(a.routes)).Msg("socket closed with sessions in flight")
	a.closeErr = err
	a.state = stFailing
	a.closeSocket(reason)
	a.setState(metrics.StateDown)
	lost := &messages.ConnectionLost{Server: a.cfg.Addr, Epoch: a.epoch, Err: err}
	for _, r := range a.routes {
		a.deliver(r, lost)
	}
	a.settle(ctx)
}

func (a *Actor) becomeIdle(ctx actor.Context, reason string) {
	a.state = stIdle
	a.setState(metrics.StateDown)
	if a.cfg.Transient {
		ctx.Stop(ctx.Self())
		return
	}
	ctx.Send(ctx.Parent(), &messages.ConnectionIdle{Server: a.cfg.Addr, Reason: reason})
	if len(a.queue) > 0 {
		a.dial(ctx)
	}
}

func (a *Actor) armIdle() {
	if a.cfg.IdleTimeout < 0 || a.cfg.Transient {
		return
	}
	a.idleGen++
	a.timer.After(a.cfg.IdleTimeout, a.self, &idleTimeout{gen: a.idleGen})
}

// closeSocket closes the socket and joins its goroutines. Close unblocks the reader's Read and the
// writer's Write, so the join is short.
func (a *Actor) closeSocket(reason string) {
	if a.cancelDial != nil {
		a.cancelDial()
		a.cancelDial = nil
	}
	if a.conn != nil {
		a.conn.Close()
		close(a.w.done)
		a.cfg.Metrics.Closed(reason)
		if !a.cfg.Transient {
			a.cfg.Metrics.ConnsOpen.Dec()
		}
		a.conn = nil
	}
	a.wg.Wait()
	a.setSingleConnect(0)
}

// replyExpired answers a request whose caller's deadline passed before it got a session: it was never
// sent, and the caller is gone, so it is not retried.
func (a *Actor) replyExpired(ctx actor.Context, m *messages.StartSession) {
	now := time.Now()
	ctx.Send(m.ReplyTo, &messages.Outcome{
		ReqID: m.Req.ID, Kind: m.Req.Kind(), Server: a.cfg.Addr, CallerDeadline: true, Started: now, Finished: now,
		Err: &tacplus.Error{Class: tacplus.ErrTimeout, Server: a.cfg.Addr, State: "connection " + a.state.String(),
			Msg: "the caller's deadline passed before the request was sent; it never was"},
	})
}

// reply answers a request that never got a session.
func (a *Actor) reply(ctx actor.Context, m *messages.StartSession, class error, msg string, retryable bool) {
	now := time.Now()
	ctx.Send(m.ReplyTo, &messages.Outcome{
		ReqID: m.Req.ID, Kind: m.Req.Kind(), Server: a.cfg.Addr, Retryable: retryable, Started: now, Finished: now,
		Err: &tacplus.Error{Class: class, Server: a.cfg.Addr, State: "connection " + a.state.String(), Msg: msg},
	})
}

func (a *Actor) answerQueued(ctx actor.Context, class error, msg string) {
	for _, m := range a.queue {
		a.reply(ctx, m, class, msg, true)
		a.cfg.Metrics.Queued.Dec()
	}
	a.queue = nil
}

func (a *Actor) returnQueued(ctx actor.Context, why messages.ReturnReason, err error) {
	if len(a.queue) == 0 {
		return
	}
	a.cfg.Metrics.Queued.Sub(float64(len(a.queue)))
	if live := a.answerExpired(ctx, a.queue); len(live) > 0 {
		ctx.Send(ctx.Parent(), &messages.Returned{Server: a.cfg.Addr, Starts: live, Reason: why, Err: err})
	}
	a.queue = nil
}

// answerExpired answers the requests whose caller's deadline has passed (they were never sent and never
// will be) and returns the others.
func (a *Actor) answerExpired(ctx actor.Context, starts []*messages.StartSession) []*messages.StartSession {
	now := time.Now()
	live := starts[:0:0]
	for _, m := range starts {
		if dl := m.Req.Deadline; !dl.IsZero() && !now.Before(dl) {
			a.replyExpired(ctx, m)
			continue
		}
		live = append(live, m)
	}
	return live
}

func (a *Actor) cancelQueued(ctx actor.Context, reqID uint64) {
	for i, m := range a.queue {
		if m.Req.ID == reqID {
			a.reply(ctx, m, tacplus.ErrAborted, "aborted before it was sent", false)
			a.queue = append(a.queue[:i], a.queue[i+1:]...)
			a.cfg.Metrics.Queued.Dec()
			return
		}
	}
}

func closeReason(err error) string {
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, tacplus.ErrBadSecret):
		return "bad_secret"
	case errors.Is(err, tacplus.ErrProtocol):
		return "protocol"
	case isTimeout(err):
		return "timeout"
	}
	return "error"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// setState and setSingleConnect write the server's connection gauges. Only the primary connection writes
// them: a server has one series each, and a per-session (transient) connection closing last would
// otherwise overwrite the primary's state. Sessions in flight are counted by the sessions themselves
// (actors/session), whose completion runs exactly once even when a stop overtakes their SessionEnded.
func (a *Actor) setState(v float64) {
	if !a.cfg.Transient && !a.cfg.Extra {
		a.cfg.Metrics.State.Set(v)
	}
}

func (a *Actor) setSingleConnect(v float64) {
	if !a.cfg.Transient && !a.cfg.Extra {
		a.cfg.Metrics.SingleConnect.Set(v)
	}
}
