package supervisor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/actors/connection"
	"github.com/tacagent/tacagent/actors/session"
	"github.com/tacagent/tacagent/internal/actorkit"
	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/serverfsm"
	"github.com/tacagent/tacagent/tacplus"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout        = 5 * time.Second
	DefaultDeadTime       = 30 * time.Second
	DefaultBackoffInitial = 50 * time.Millisecond
	DefaultBackoffMax     = 5 * time.Second
	// DefaultFailureWindow is how far back failures count towards the backoff.
	DefaultFailureWindow = 5 * time.Minute
	// DefaultHoldDown is how long a server whose connection desynchronised is used one connection per
	// session (issue 12 point 1).
	DefaultHoldDown = serverfsm.DefaultHoldDown
	// DefaultMaxConnectionAge is MaxConnectionAge's default (issue 12 point 9).
	DefaultMaxConnectionAge = serverfsm.DefaultMaxAge
)

// ErrDraining is the cause of the answer (class ErrAborted, errors.Is(err, ErrDraining)) to a request
// that reached a supervisor after its drain began (a reload or Close): nothing of it was sent, so a caller
// that replaced the runtime may send it again to the new one. agent.ErrDraining is the same value.
var ErrDraining = errors.New("the request reached a draining runtime and was not sent")

// probeBit marks the request IDs of background probes; the API numbers its requests from 1 up.
const probeBit = uint64(1) << 63

// Server configures one TACACS+ server.
type Server struct {
	Addr          string // "host:port"
	Codec         *tacplus.Codec
	Timeout       time.Duration // per reply; default DefaultTimeout
	DialTimeout   time.Duration
	IdleTimeout   time.Duration
	MaxInFlight   int
	SingleConnect bool
	SourceAddr    string
	// Conns is how many long-lived multiplexed connections to keep to the server (connections_per_server);
	// 0 means 1. New sessions go to them in turn.
	Conns int
	// Dial replaces the TCP dialer (TLS, tests); nil means plain TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// Group is an ordered list of server addresses.
type Group struct {
	Name    string
	Servers []string
}

// Config configures the supervisor.
type Config struct {
	Servers  []Server
	Groups   []Group // the first is the default group; when empty, one group of all servers in order
	DeadTime time.Duration
	// HoldDown is how long a server is used one connection per session after one of its connections
	// desynchronised (a packet it could not match to a live session); default DefaultHoldDown.
	HoldDown time.Duration
	// MaxConnectionAge retires a server's long-lived connection this long (plus or minus 10% jitter) after it
	// was started: it takes no new sessions, a fresh one takes over, and it closes when its sessions end, so
	// that a server's reloaded configuration reaches every connection. Default
	// DefaultMaxConnectionAge; negative: never.
	MaxConnectionAge time.Duration
	BackoffInitial   time.Duration
	BackoffMax       time.Duration
	Metrics          *metrics.Metrics
	Log              zerolog.Logger
	// NewSession builds a request's session, which its connection actor hosts; the agent wires
	// actors/session here.
	NewSession func(start *messages.StartSession, info connection.SessionInfo) *session.Session
	// OnSessionPanic is called when a session panics (the agent counts it).
	OnSessionPanic func()
	// ConnProps are added to every connection actor's props (the agent's panic logger).
	ConnProps []actor.PropsOption
}

// Validate checks the configuration and fills in defaults.
func (c *Config) Validate() error {
	if len(c.Servers) == 0 {
		return &tacplus.Error{Class: tacplus.ErrConfig, Msg: "no servers configured"}
	}
	seen := map[string]bool{}
	for i := range c.Servers {
		s := &c.Servers[i]
		if s.Addr == "" || s.Codec == nil {
			return &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("servers[%d]: address and codec are required", i)}
		}
		if seen[s.Addr] {
			return &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("servers[%d]: %s listed twice", i, s.Addr)}
		}
		seen[s.Addr] = true
		if s.Timeout <= 0 {
			s.Timeout = DefaultTimeout
		}
	}
	if len(c.Groups) == 0 {
		g := Group{Name: "default"}
		for _, s := range c.Servers {
			g.Servers = append(g.Servers, s.Addr)
		}
		c.Groups = []Group{g}
	}
	for _, g := range c.Groups {
		if len(g.Servers) == 0 {
			return &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("group %q has no servers", g.Name)}
		}
		for _, a := range g.Servers {
			if !seen[a] {
				return &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("group %q names unknown server %s", g.Name, a)}
			}
		}
	}
	if c.DeadTime <= 0 {
		c.DeadTime = DefaultDeadTime
	}
	if c.HoldDown <= 0 {
		c.HoldDown = DefaultHoldDown
	}
	if c.BackoffInitial <= 0 {
		c.BackoffInitial = DefaultBackoffInitial
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.Metrics == nil {
		c.Metrics = metrics.Nop()
	}
	if c.NewSession == nil {
		return &tacplus.Error{Class: tacplus.ErrConfig, Msg: "supervisor: NewSession is required"}
	}
	return nil
}

type server struct {
	cfg       Server
	m         *metrics.Server
	slots     []*slot            // the long-lived connections (connections_per_server), each restarted on its own
	next      int                // the slot the next request tries first
	fsm       *serverfsm.Machine // health, dead-time, negotiation memory, hold-down
	connected bool               // the primary connection actor has a socket or had one since it last failed
	badKey    bool               // its last failure was a key mismatch: only the probe is tried until it answers
	lastErr   string
	lastErrAt time.Time                // when lastErr was set
	state     string                   // what status reports: "up", "down" or "dead" (stateOf)
	since     time.Time                // when state last changed
	rs        *actor.RestartStatistics // failures of the server's long-lived connections, for the backoff
	conns     map[string]*actor.PID    // every live connection actor of this server, primary included
}

// slot is one long-lived ("primary") connection actor of a server.
type slot struct {
	pid        *actor.PID // nil once the actor stopped
	restartGen uint64
	restarting bool // the actor failed and waits for its backoff to end
}

// slotOf returns the slot whose actor is pid, or nil.
func (s *server) slotOf(pid *actor.PID) *slot {
	for _, sl := range s.slots {
		if sl.pid != nil && sl.pid.Equal(pid) {
			return sl
		}
	}
	return nil
}

// pick chooses the long-lived connection for a new session: the next one in turn that is not waiting
// out a restart backoff; when all are, one that is (its mailbox holds the request until the restart),
// but only while the server is alive. Nil means a connection of the request's own.
func (s *server) pick() *slot {
	var waiting *slot
	for i := range s.slots {
		sl := s.slots[(s.next+i)%len(s.slots)]
		switch {
		case sl.pid == nil:
		case !sl.restarting:
			s.next = (s.next + i + 1) % len(s.slots)
			return sl
		case waiting == nil:
			waiting = sl
		}
	}
	if waiting != nil && s.fsm.Alive() {
		return waiting
	}
	return nil
}

type pending struct {
	req        *messages.Request
	caller     *actor.PID
	kind       messages.Kind
	tried      []*server // servers this request was sent to (a group has a handful)
	attempt    int
	current    *server
	sameServer bool                   // the one same-server retry after a lost connection was used
	sameAddr   string                 // the server of that retry
	session    *actor.PID             // set by the first Prompt: from then on the request is never retried
	start      *messages.StartSession // the last start sent, and the connection actor it went to
	sentTo     *actor.PID
	cancelled  string // the reason of a Cancel; the request ends with ErrAborted at the next chance
	lastErr    error
}

func (p *pending) triedOn(s *server) bool {
	for _, t := range p.tried {
		if t == s {
			return true
		}
	}
	return false
}

func (p *pending) untry(s *server) {
	for i, t := range p.tried {
		if t == s {
			p.tried = append(p.tried[:i], p.tried[i+1:]...)
			return
		}
	}
}

type restartConn struct {
	actorkit.QuietMessage
	addr string
	slot int
	gen  uint64
}

type drainCheck struct{ actorkit.QuietMessage }

// retireConn is the age timer of a primary connection actor.
type retireConn struct {
	actorkit.QuietMessage
	addr string
	pid  *actor.PID
}

// probeDue is the serverfsm.ArmProbe timer.
type probeDue struct {
	actorkit.QuietMessage
	addr string
}

// probe is a running background probe: an ASCII LOGIN START without a user on a connection of its own.
type probe struct {
	s        *server
	answered bool
}

// Actor is the supervisor actor.
type Actor struct {
	cfg      Config
	log      zerolog.Logger
	timer    actorkit.Timer
	root     *actor.RootContext
	self     *actor.PID
	sup      actor.Supervisor
	epochs   atomic.Uint64
	servers  map[string]*server
	order    []*server // config order, for status
	byPID    map[string]*server
	groups   map[string][]*server
	defGroup string
	pending  map[uint64]*pending
	probes   map[uint64]*probe
	probeSeq uint64
	draining *drainState
	now      func() time.Time
}

type drainState struct {
	caller   *actor.PID
	deadline time.Time
}

// Props returns the supervisor's props. cfg must have passed Validate.
func Props(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return New(cfg) })
}

// New returns a supervisor actor; exported for embedding in other props.
func New(cfg Config) *Actor { return &Actor{cfg: cfg, now: time.Now} }

// Receive implements actor.Actor.
func (a *Actor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case *messages.Request:
		a.request(ctx, m)
	case *messages.Outcome:
		a.outcome(ctx, m)
	case *messages.Prompt:
		// The request stays pending, so that its Outcome comes back here (the caller always hears from
		// the supervisor) and Cancel and Drain still see it; a prompted request is never retried.
		if pr, ok := a.probes[m.ReqID]; ok {
			// The probe's GETUSER: a well-formed answer under our key. The server is back; end the session.
			pr.answered = true
			a.step(ctx, pr.s, serverfsm.Answered{At: a.now()})
			ctx.Send(m.Session, &messages.Abort{ReqID: m.ReqID, Reason: "probe"})
			return
		}
		if s := a.servers[m.Server]; s != nil {
			a.step(ctx, s, serverfsm.Answered{At: a.now()})
		}
		if p, ok := a.pending[m.ReqID]; ok {
			p.session = m.Session
			ctx.Send(p.caller, m)
		}
	case *messages.Cancel:
		a.cancel(ctx, m)
	case *messages.Returned:
		a.returned(ctx, m)
	case *messages.Connected:
		// A socket is not proof of life (a blackholed server accepts connections): only the backoff resets.
		if s := a.servers[m.Server]; s != nil {
			s.connected = true
			a.observe(s)
			if s.rs != nil {
				s.rs.Reset()
			}
		}
	case *messages.Negotiated:
		if s := a.servers[m.Server]; s != nil {
			before := s.fsm.Negotiation()
			a.step(ctx, s, serverfsm.Negotiated{At: a.now(), Agreed: m.SingleConnect})
			if s.fsm.Negotiation() != before {
				a.log.Info().Str("server", s.cfg.Addr).Stringer("negotiation", s.fsm.Negotiation()).Msg("single-connect negotiated")
			}
		}
	case *messages.Desync:
		// A protocol error of the server: hold-down and dead-time (serverfsm).
		if s := a.servers[m.Server]; s != nil {
			a.setErr(s, "connection desynchronised: "+m.Reason)
			a.step(ctx, s, serverfsm.Desynced{At: a.now(), Reason: m.Reason})
		}
	case *probeDue:
		if s := a.servers[m.addr]; s != nil {
			a.step(ctx, s, serverfsm.ProbeDue{At: a.now()})
		}
	case *messages.ConnectionIdle:
	case *withdrawFrom:
		a.withdraw(ctx, m)
	case *restartConn:
		if s := a.servers[m.addr]; s != nil && m.slot < len(s.slots) {
			if sl := s.slots[m.slot]; m.gen == sl.restartGen && sl.pid != nil {
				sl.restarting = false
				s.m.Restarts.Inc()
				a.sup.RestartChildren(sl.pid)
			}
		}
	case *actor.Terminated:
		if s := a.byPID[m.Who.Id]; s != nil {
			delete(a.byPID, m.Who.Id)
			delete(s.conns, m.Who.Id)
			if sl := s.slotOf(m.Who); sl != nil {
				sl.pid = nil
			}
		}
	case *messages.Status:
		ctx.Respond(a.status())
	case *messages.Drain:
		a.draining = &drainState{caller: ctx.Sender(), deadline: m.Deadline}
		a.timer.After(time.Until(m.Deadline), a.self, &drainCheck{})
		a.checkDrain(ctx)
	case *drainCheck:
		a.checkDrain(ctx)
	case *retireConn:
		a.retire(ctx, m)
	}
}

// errCancelled is the Outcome of a request cancelled before any session ran it.
func cancelledError(reason string) error {
	return &tacplus.Error{Class: tacplus.ErrAborted, Msg: reason}
}

func (a *Actor) start(ctx actor.Context) {
	a.log = a.cfg.Log.With().Str("actor", "supervisor").Logger()
	a.timer = actorkit.NewTimer(ctx.ActorSystem().Root)
	a.root = ctx.ActorSystem().Root
	a.self = ctx.Self()
	a.sup, _ = ctx.(actor.Supervisor)
	a.servers = make(map[string]*server)
	a.byPID = make(map[string]*server)
	a.groups = make(map[string][]*server)
	a.pending = make(map[uint64]*pending)
	a.probes = make(map[uint64]*probe)
	for _, sc := range a.cfg.Servers {
		s := &server{cfg: sc, m: a.cfg.Metrics.Server(sc.Addr), rs: actor.NewRestartStatistics(), conns: map[string]*actor.PID{},
			state: "down", since: a.now()}
		s.fsm = serverfsm.New(serverfsm.Config{DeadTime: a.cfg.DeadTime, HoldDown: a.cfg.HoldDown,
			MaxAge: a.cfg.MaxConnectionAge, SingleConnect: sc.SingleConnect})
		a.servers[sc.Addr] = s
		a.order = append(a.order, s)
		for i := range max(sc.Conns, 1) {
			s.slots = append(s.slots, &slot{pid: a.spawnPrimary(ctx, s, i > 0)})
		}
	}
	for i, g := range a.cfg.Groups {
		for _, addr := range g.Servers {
			a.groups[g.Name] = append(a.groups[g.Name], a.servers[addr])
		}
		if i == 0 {
			a.defGroup = g.Name
		}
	}
}

func (a *Actor) connConfig(s *server, transient bool) connection.Config {
	return connection.Config{
		Addr: s.cfg.Addr, Codec: s.cfg.Codec, DialTimeout: s.cfg.DialTimeout, SourceAddr: s.cfg.SourceAddr,
		IdleTimeout: s.cfg.IdleTimeout, MaxInFlight: s.cfg.MaxInFlight, SingleConnect: s.cfg.SingleConnect,
		Transient: transient, DialNow: !transient, Epochs: &a.epochs, Metrics: s.m, Log: a.cfg.Log,
		NewSession: a.cfg.NewSession, OnPanic: a.cfg.OnSessionPanic, Dial: s.cfg.Dial, Negotiation: connNegotiation(s.fsm.Negotiation()),
	}
}

// connNegotiation hands the remembered negotiation to a new connection actor (issue 12 point 2): with
// Agreed, a fresh primary (after a retirement) sends its queued requests at once. A restarted actor keeps
// the value it was spawned with; the machine forgets it on a failure, so later spawns do not get it.
func connNegotiation(n serverfsm.Negotiation) connection.Negotiation {
	switch n {
	case serverfsm.Agreed:
		return connection.NegotiationAgreed
	case serverfsm.Refused:
		return connection.NegotiationRefused
	}
	return connection.NegotiationUnknown
}

func (a *Actor) request(ctx actor.Context, m *messages.Request) {
	caller := ctx.Sender()
	if a.draining != nil {
		ctx.Send(caller, a.failOutcome(m, &tacplus.Error{Class: tacplus.ErrAborted, Msg: "agent is shutting down", Err: ErrDraining}))
		return
	}
	group := m.Group
	if group == "" {
		group = a.defGroup
	}
	if _, ok := a.groups[group]; !ok {
		ctx.Send(caller, a.failOutcome(m, &tacplus.Error{Class: tacplus.ErrConfig, Msg: fmt.Sprintf("unknown server group %q", group)}))
		return
	}
	p := &pending{req: m, caller: caller, kind: m.Kind()}
	m.Group = group
	a.pending[m.ID] = p
	a.dispatch(ctx, p)
}

// pick returns the first alive server of the group not yet tried for this request. When no server of the
// group is alive, it returns the first untried one in order anyway: a request is never failed untried, and
// a server that came back serves the first login after its return (its answer revives it).
func (a *Actor) pick(p *pending) *server {
	anyAlive := false
	for _, s := range a.groups[p.req.Group] {
		if !s.fsm.Alive() {
			continue
		}
		anyAlive = true
		if !p.triedOn(s) {
			return s
		}
	}
	if anyAlive {
		return nil // no login waits on a dead server while another is alive
	}
	for _, s := range a.groups[p.req.Group] {
		// A key mismatch is configuration, not an outage: retrying it on every login is a retry storm,
		// so such a server waits for its probe to answer.
		if !p.triedOn(s) && !s.badKey {
			return s
		}
	}
	return nil
}

// expired says whether the caller's deadline has passed: such a request is never sent (again).
func (a *Actor) expired(p *pending) bool {
	return !p.req.Deadline.IsZero() && !a.now().Before(p.req.Deadline)
}

func (a *Actor) deadlineOutcome(p *pending) *messages.Outcome {
	o := a.failOutcome(p.req, &tacplus.Error{Class: tacplus.ErrTimeout, Msg: "the caller's deadline passed before the request could be sent"})
	o.CallerDeadline = true
	return o
}

func (a *Actor) dispatch(ctx actor.Context, p *pending) {
	if p.cancelled != "" {
		a.finish(ctx, p, a.failOutcome(p.req, cancelledError(p.cancelled)))
		return
	}
	if a.expired(p) {
		a.finish(ctx, p, a.deadlineOutcome(p))
		return
	}
	s := a.pick(p)
	if s == nil {
		err := p.lastErr
		if err == nil {
			err = a.allDeadError(p.req.Group)
		}
		a.finish(ctx, p, a.failOutcome(p.req, err))
		return
	}
	a.send(ctx, p, s)
}

// allDeadError says that no server of the group could be tried, with the last error each one had, so that
// a login refused during dead-time still tells why (a wrong key, say).
func (a *Actor) allDeadError(group string) error {
	msg := "every server of group " + group + " is dead-timed"
	for _, s := range a.groups[group] {
		if s.lastErr != "" {
			msg += "; " + s.cfg.Addr + ": " + s.lastErr
		}
	}
	return &tacplus.Error{Class: tacplus.ErrUnreachable, Msg: msg}
}

func (a *Actor) send(ctx actor.Context, p *pending, s *server) {
	p.tried = append(p.tried, s)
	p.current = s
	start := &messages.StartSession{Req: p.req, ReplyTo: a.self, Timeout: s.cfg.Timeout, Attempt: p.attempt}
	if s.fsm.Alive() {
		// A final answer may go straight to the caller: on a live server it changes nothing here but the
		// pending table (an answer revives a dead server, which must be in effect when the caller hears).
		start.Caller = p.caller
	}
	p.attempt++
	var sl *slot
	if s.fsm.Multiplex(a.now()) {
		// (A dead server is tried only when every server of the group is dead. A primary connection
		// waiting out its restart backoff must not hold the request that long: a connection of its own
		// dials now, and fails fast if the server is still down.)
		sl = s.pick()
	}
	if sl == nil {
		p.start, p.sentTo = start, a.spawnConn(ctx, s, true, false)
		ctx.Send(p.sentTo, start)
		return
	}
	p.start, p.sentTo = start, sl.pid
	ctx.Send(sl.pid, start)
}

// sendOwn sends a request that was never sent to the server on a connection of its own.
func (a *Actor) sendOwn(ctx actor.Context, p *pending, s *server) {
	p.tried = append(p.tried, s)
	p.current = s
	start := &messages.StartSession{Req: p.req, ReplyTo: a.self, Timeout: s.cfg.Timeout, Attempt: p.attempt}
	p.attempt++
	p.start, p.sentTo = start, a.spawnConn(ctx, s, true, false)
	ctx.Send(p.sentTo, start)
}

// withdrawFrom is sent to itself by the supervisor when a primary connection actor failed: the starts
// still in that actor's mailbox would wait out its restart backoff.
type withdrawFrom struct {
	actorkit.QuietMessage
	pid *actor.PID
}

// withdraw takes back every start sent to a failed primary that the actor had not taken when it failed
// (messages.StartSession.Withdraw): nothing of them was sent to a server, so each is dispatched again as if
// new, by the same rules (the failure has been taken into account: a server whose connect failed is dead,
// and a dead server is tried, on a connection of its own, only when its whole group is dead).
func (a *Actor) withdraw(ctx actor.Context, m *withdrawFrom) {
	s := a.byPID[m.pid.Id]
	for _, p := range a.pending {
		if p.sentTo == nil || !p.sentTo.Equal(m.pid) || p.start == nil || !p.start.Withdraw() {
			continue
		}
		a.log.Debug().Uint64("req", p.req.ID).Msg("request withdrawn from a failed connection")
		if s != nil {
			p.untry(s)
			p.attempt--
		}
		p.start, p.sentTo = nil, nil
		a.dispatch(ctx, p)
	}
}

// spawnPrimary starts a server's long-lived connection actor and arms its age limit.
func (a *Actor) spawnPrimary(ctx actor.Context, s *server, extra bool) *actor.PID {
	pid := a.spawnConn(ctx, s, false, extra)
	if at := s.fsm.RetireAt(a.now(), rand.Float64()*2-1); !at.IsZero() {
		a.timer.After(at.Sub(a.now()), a.self, &retireConn{addr: s.cfg.Addr, pid: pid})
	}
	return pid
}

// retire ends a primary connection's service: it takes no new sessions (it hands them back with
// ReturnRetired), closes when its running sessions end, and a fresh primary takes over.
func (a *Actor) retire(ctx actor.Context, m *retireConn) {
	s := a.servers[m.addr]
	if s == nil || a.draining != nil {
		return
	}
	sl := s.slotOf(m.pid)
	if sl == nil {
		return // stopped, or the agent is closing
	}
	a.log.Debug().Str("server", s.cfg.Addr).Msg("retiring an aged connection")
	ctx.Send(m.pid, &messages.Retire{})
	sl.pid = a.spawnPrimary(ctx, s, sl != s.slots[0])
	sl.restarting = false
}

func (a *Actor) spawnConn(ctx actor.Context, s *server, transient, extra bool) *actor.PID {
	cfg := a.connConfig(s, transient)
	cfg.Extra = extra
	pid := ctx.Spawn(connection.Props(cfg, a.cfg.ConnProps...))
	a.byPID[pid.Id] = s
	s.conns[pid.Id] = pid
	return pid
}

// realAnswer says whether an outcome carries a well-formed TACACS+ reply from the server: a PASS, a FAIL,
// an ERROR. Only such an answer proves a server alive.
func realAnswer(o *messages.Outcome) bool {
	return o.Err == nil || errors.Is(o.Err, tacplus.ErrAuthenticationFailed) || errors.Is(o.Err, tacplus.ErrDenied) ||
		errors.Is(o.Err, tacplus.ErrServerError)
}

func (a *Actor) outcome(ctx actor.Context, o *messages.Outcome) {
	if pr, ok := a.probes[o.ReqID]; ok {
		delete(a.probes, o.ReqID)
		switch {
		case pr.answered:
		case realAnswer(o):
			a.step(ctx, pr.s, serverfsm.Answered{At: a.now()})
		default:
			cause := "probe ended without an answer"
			if o.Err != nil {
				cause = o.Err.Error()
			}
			a.step(ctx, pr.s, serverfsm.ProbeFailed{At: a.now(), Cause: cause})
		}
		return
	}
	s := a.servers[o.Server]
	if s != nil && realAnswer(o) {
		a.step(ctx, s, serverfsm.Answered{At: a.now()})
	}
	p, ok := a.pending[o.ReqID]
	if !ok {
		return // the caller gave up, or the request was already answered
	}
	if o.Delivered {
		// The session answered the caller itself: a final answer (messages.Outcome.Final) that the rules
		// below would relay unchanged.
		a.done(ctx, p)
		return
	}
	if o.Err == nil || s == nil {
		a.finish(ctx, p, o)
		return
	}
	p.lastErr = o.Err
	if o.CallerDeadline || a.expired(p) && errors.Is(o.Err, tacplus.ErrTimeout) {
		// The caller's deadline, not the server's timeout: nothing about the server's health, and the
		// caller is gone, so no retry either.
		a.finish(ctx, p, o)
		return
	}
	retry, markDead := a.classify(o)
	if errors.Is(o.Err, tacplus.ErrConnectionLost) && p.sameServer && p.sameAddr == s.cfg.Addr {
		// Lost again, on a fresh connection to the same server: not the idle-close race but a server that
		// accepts connections and drops them. Dead-time it, so that the next logins do not pay for it.
		markDead = true
	}
	if retry || markDead || errors.Is(o.Err, tacplus.ErrProtocol) {
		a.setErr(s, o.Err.Error()) // the server's health; a FAIL or the caller's mistakes say nothing of it
	}
	if markDead {
		a.markDead(ctx, s, o.Err)
	}
	if !retry || p.session != nil || p.cancelled != "" {
		// A request that showed the user a prompt is never retried: the conversation cannot be replayed.
		if retry && p.cancelled != "" {
			// It would have been retried, but its caller gave up meanwhile: it ends as the caller asked
			// (aborted), with what happened on the server as the cause.
			o.Err = &tacplus.Error{Class: tacplus.ErrAborted, Msg: p.cancelled, Err: o.Err}
			o.Retryable = false
		}
		a.finish(ctx, p, o)
		return
	}
	if errors.Is(o.Err, tacplus.ErrConnectionLost) && !p.sameServer && !markDead {
		// The connection closed before any reply: most often a server closing an idle connection just as
		// the request went out. That must never fail a login: once more on the same server, whose
		// connection actor reconnects (and whose failed redial would then mark it dead).
		p.sameServer, p.sameAddr = true, s.cfg.Addr
		p.untry(s)
		a.log.Debug().Str("server", s.cfg.Addr).Uint64("request", p.req.ID).Err(o.Err).Msg("retrying on the same server")
	} else {
		a.cfg.Metrics.Failovers.WithLabelValues(s.cfg.Addr, p.kind.String()).Inc()
		a.log.Info().Str("server", s.cfg.Addr).Uint64("request", p.req.ID).Err(o.Err).Msg("trying next server")
	}
	a.dispatch(ctx, p)
}

// classify applies the retry rules to a failed outcome; markDead is serverfsm.Blame: only the server's own
// failures (no connect, its reply timeout, a wrong key, a protocol error in what it sent) dead-time it.
func (a *Actor) classify(o *messages.Outcome) (retry, markDead bool) {
	markDead = serverfsm.Blame(o.Err, o.CallerDeadline)
	switch {
	case errors.Is(o.Err, tacplus.ErrAuthenticationFailed), errors.Is(o.Err, tacplus.ErrDenied),
		errors.Is(o.Err, tacplus.ErrAborted), errors.Is(o.Err, tacplus.ErrConfig):
		return false, markDead
	case errors.Is(o.Err, tacplus.ErrUnreachable), errors.Is(o.Err, tacplus.ErrTimeout):
		return !o.CallerDeadline && (o.Retryable || errors.Is(o.Err, tacplus.ErrUnreachable)), markDead
	case errors.Is(o.Err, tacplus.ErrBadSecret):
		return true, markDead
	case errors.Is(o.Err, tacplus.ErrConnectionLost):
		return o.Retryable, markDead
	case errors.Is(o.Err, tacplus.ErrServerError):
		return true, markDead
	}
	return false, markDead // protocol errors: the server misbehaved mid-session; the caller decides
}

// markDead reports a failure of the server itself to its machine.
func (a *Actor) markDead(ctx actor.Context, s *server, err error) {
	s.badKey = errors.Is(err, tacplus.ErrBadSecret)
	a.step(ctx, s, serverfsm.Failed{At: a.now(), Cause: err.Error()})
}

// step applies an event to a server's machine and carries out its effects.
func (a *Actor) step(ctx actor.Context, s *server, ev serverfsm.Event) {
	defer a.observe(s)
	for _, fx := range s.fsm.Step(ev) {
		switch f := fx.(type) {
		case serverfsm.LogDead:
			a.log.Warn().Str("server", s.cfg.Addr).Str("cause", f.Cause).Stringer("dead_time", f.DeadTime).Msg("server marked dead")
			s.m.Dead.Set(1)
		case serverfsm.LogAlive:
			s.badKey = false
			a.log.Info().Str("server", s.cfg.Addr).Msg("server alive again (it answered)")
			s.m.Dead.Set(0)
		case serverfsm.ArmProbe:
			s.m.Dead.Set(1)
			a.timer.After(f.At.Sub(a.now()), a.self, &probeDue{addr: s.cfg.Addr})
		case serverfsm.StartProbe:
			a.startProbe(ctx, s)
		case serverfsm.LogHoldDown:
			a.log.Warn().Str("server", s.cfg.Addr).Str("reason", f.Reason).Time("until", f.Until).
				Msg("connection desynchronised: server used one connection per session until the hold-down ends or a reload")
			a.cfg.Metrics.HoldDowns.WithLabelValues(s.cfg.Addr).Inc()
		}
	}
}

// startProbe sends the background probe: an ASCII LOGIN START without a user, on a connection of its own.
// A GETUSER (or any well-formed reply) under our key revives the server; the session is then aborted.
func (a *Actor) startProbe(ctx actor.Context, s *server) {
	if a.draining != nil {
		return
	}
	a.probeSeq++
	id := probeBit | a.probeSeq
	a.probes[id] = &probe{s: s}
	req := &messages.Request{ID: id, Authen: &messages.AuthenRequest{Action: tacplus.ActionLogin,
		Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin}}
	a.log.Debug().Str("server", s.cfg.Addr).Msg("probing dead server")
	ctx.Send(a.spawnConn(ctx, s, true, false), &messages.StartSession{Req: req, ReplyTo: a.self, Timeout: s.cfg.Timeout})
}

func (a *Actor) returned(ctx actor.Context, m *messages.Returned) {
	s := a.servers[m.Server]
	for _, st := range m.Starts {
		p, ok := a.pending[st.Req.ID]
		if !ok || s == nil {
			continue
		}
		if p.cancelled != "" {
			a.finish(ctx, p, a.failOutcome(p.req, cancelledError(p.cancelled)))
			continue
		}
		switch m.Reason {
		case messages.ReturnBadSecret:
			// Section 4.4: nothing new on that connection; the server is misconfigured for us.
			a.markDead(ctx, s, m.Err)
			s.badKey = true
			a.setErr(s, "key mismatch")
			p.lastErr = &tacplus.Error{Class: tacplus.ErrBadSecret, Server: m.Server, Msg: "connection draining after a key mismatch", Err: m.Err}
			a.dispatch(ctx, p)
			continue
		case messages.ReturnRefused:
			// Single-connect refused, or a per-session connection already used: same server, own connection.
			a.step(ctx, s, serverfsm.Negotiated{At: a.now(), Agreed: false})
		case messages.ReturnNegotiation:
			// Waited too long behind a pending negotiation: never sent, so the same server on a connection
			// of its own, nothing used up, and the server is not marked refused.
			if a.expired(p) {
				a.finish(ctx, p, a.deadlineOutcome(p))
				continue
			}
			p.untry(s)
			p.attempt--
			a.sendOwn(ctx, p, s)
			continue
		}
		if a.expired(p) {
			a.finish(ctx, p, a.deadlineOutcome(p))
			continue
		}
		// ReturnRefused and ReturnRestart: the request was never sent; same server, nothing used up.
		p.untry(s)
		p.attempt--
		a.send(ctx, p, s)
	}
}

func (a *Actor) cancel(ctx actor.Context, m *messages.Cancel) {
	p, ok := a.pending[m.ID]
	if !ok {
		return
	}
	reason := m.Reason
	if reason == "" {
		reason = "cancelled by caller"
	}
	p.cancelled = reason
	abort := &messages.Abort{ReqID: m.ID, Reason: reason}
	switch {
	case p.session != nil:
		// In a conversation: the session sends a CONTINUE with ABORT (RFC 8907 section 5.4.3).
		ctx.Send(p.session, abort)
	case p.current != nil:
		// The connection routes it to the session (which ends without a packet while the server holds the
		// turn) or drops the queued request; either way an Outcome with ErrAborted comes back here. A
		// request on its way back to this actor (Returned) is ended when it arrives.
		for _, pid := range p.current.conns {
			ctx.Send(pid, abort)
		}
	default:
		a.finish(ctx, p, a.failOutcome(p.req, cancelledError(reason)))
	}
}

func (a *Actor) finish(ctx actor.Context, p *pending, o *messages.Outcome) {
	ctx.Send(p.caller, o)
	a.done(ctx, p)
}

// done forgets an answered request.
func (a *Actor) done(ctx actor.Context, p *pending) {
	delete(a.pending, p.req.ID)
	if a.draining != nil && a.draining.caller != nil && len(a.pending) == 0 {
		a.checkDrain(ctx)
	}
}

func (a *Actor) failOutcome(r *messages.Request, err error) *messages.Outcome {
	now := a.now()
	return &messages.Outcome{ReqID: r.ID, Kind: r.Kind(), Err: err, Started: now, Finished: now}
}

func (a *Actor) checkDrain(ctx actor.Context) {
	if a.draining == nil || a.draining.caller == nil {
		return
	}
	if len(a.pending) > 0 && a.now().Before(a.draining.deadline) {
		return
	}
	// At the deadline every request still running gets a typed answer now, before the actors stop.
	caller := a.draining.caller
	a.draining.caller = nil // finish must not answer the drain again
	abandoned := len(a.pending)
	for _, p := range a.pending {
		err := &tacplus.Error{Class: tacplus.ErrAborted, Msg: "agent closed before the request completed"}
		if p.current != nil {
			err.Server = p.current.cfg.Addr
		}
		a.finish(ctx, p, a.failOutcome(p.req, err))
	}
	ctx.Send(caller, &messages.Drained{Abandoned: abandoned})
}

// setErr records a server's last error and when it happened.
func (a *Actor) setErr(s *server, msg string) { s.lastErr, s.lastErrAt = msg, a.now() }

// stateOf is the state status reports for s.
func stateOf(s *server) string {
	switch {
	case !s.fsm.Alive():
		return "dead"
	case s.connected:
		return "up"
	}
	return "down"
}

// observe notes when s's reported state changes; every event that can change it calls observe.
func (a *Actor) observe(s *server) {
	if st := stateOf(s); st != s.state {
		s.state, s.since = st, a.now()
	}
}

func (a *Actor) status() *messages.StatusReport {
	r := &messages.StatusReport{Pending: len(a.pending)}
	now := a.now()
	handed := map[*server]int{}
	for _, p := range a.pending {
		if p.current != nil {
			handed[p.current]++
		}
	}
	for _, s := range a.order {
		a.observe(s)
		st := messages.ServerStatus{Addr: s.cfg.Addr, SingleConnect: s.fsm.Multiplex(now), LastError: s.lastErr,
			LastErrorAt: s.lastErrAt, DeadUntil: s.fsm.DeadUntil(), State: s.state, Since: s.since}
		// Handed to the server's connections and not answered yet: queued there (the connections keep the
		// queued gauge) or running.
		st.Queued = min(handed[s], gaugeValue(s.m.Queued))
		st.Connections, st.Open = len(s.slots), min(len(s.slots), gaugeValue(s.m.ConnsOpen))
		st.InFlight = handed[s] - st.Queued
		for name, g := range a.groups {
			for _, gs := range g {
				if gs == s {
					st.Group = name
				}
			}
		}
		r.Servers = append(r.Servers, st)
	}
	return r
}

// gaugeValue reads a gauge (0 when it cannot be read).
func gaugeValue(g prometheus.Gauge) int {
	var m dto.Metric
	if g == nil || g.Write(&m) != nil || m.Gauge == nil {
		return 0
	}
	return max(0, int(m.Gauge.GetValue()))
}

// HandleFailure implements actor.SupervisorStrategy for the connection actors: a failed transient
// connection is stopped; a failed primary marks its server dead and is restarted after a capped
// exponential backoff, reset by the next successful connect. It runs on the supervisor's goroutine.
func (a *Actor) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason interface{}, _ interface{}) {
	a.sup = sup
	s := a.byPID[child.Id]
	var sl *slot
	if s != nil {
		sl = s.slotOf(child)
	}
	if sl == nil {
		sup.StopChildren(child)
		return
	}
	err, _ := reason.(error)
	if err == nil {
		err = fmt.Errorf("%v", reason)
	}
	s.connected = false
	a.setErr(s, err.Error())
	a.observe(s)
	// Only a failed connect proves the server dead. A socket that died with sessions in flight may be a
	// server closing an idle connection as a request went out: those sessions are retried on this server,
	// and the restart's own connect (the probe) marks the server dead if it really is gone.
	if f, ok := reason.(*connection.Failure); ok && f.Dial {
		a.markDead(nil, s, err)
	} else {
		a.step(nil, s, serverfsm.ConnectionLost{At: a.now()})
	}
	s.rs.Fail()
	n := s.rs.NumberOfFailures(DefaultFailureWindow)
	d := Backoff(n, a.cfg.BackoffInitial, a.cfg.BackoffMax)
	sl.restartGen++
	sl.restarting = true
	a.root.Send(a.self, &withdrawFrom{pid: child})
	a.log.Debug().Str("server", s.cfg.Addr).Stringer("backoff", d).Int("failures", n).Msg("connection restart scheduled")
	a.timer.After(d, a.self, &restartConn{addr: s.cfg.Addr, slot: slices.Index(s.slots, sl), gen: sl.restartGen})
}

// Backoff is the delay before restart number n (from 1) of a connection actor: initial doubled per failure
// since the last good connect, capped at max.
func Backoff(n int, initial, max time.Duration) time.Duration {
	if n < 1 {
		n = 1
	}
	d := initial << min(n-1, 30)
	if d > max || d <= 0 {
		d = max
	}
	return d
}
