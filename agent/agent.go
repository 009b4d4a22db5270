package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/actors/connection"
	"github.com/tacagent/tacagent/actors/session"
	"github.com/tacagent/tacagent/actors/supervisor"
	"github.com/tacagent/tacagent/agentconfig"
	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/internal/actorkit"
	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
)

// Defaults.
const (
	// DefaultUserTimeout bounds how long a session waits for the user to answer a prompt.
	DefaultUserTimeout = agentconfig.DefaultUserTimeout
	// DefaultDrainTimeout bounds Close when the context has no deadline.
	DefaultDrainTimeout = 10 * time.Second
	// deadlineGrace is how long after the caller's deadline the agent still waits for the session's own
	// timer to answer with a typed error, before it gives up on its own.
	deadlineGrace = 100 * time.Millisecond
)

// Server configures one TACACS+ server (agentconfig.Server: the type lives in a package without actors,
// so that the config package can build it).
type Server = agentconfig.Server

// Group is an ordered list of servers, by address.
type Group = agentconfig.Group

// Config configures an Agent.
type Config = agentconfig.Config

// TLSState is what the last verified TLS handshake with a server established.
type TLSState = agentconfig.TLSState

type options struct {
	log     zerolog.Logger
	reg     prometheus.Registerer
	metrics *metrics.Metrics
}

// Option configures New.
type Option func(*options)

// WithLogger sets the logger (default: none).
func WithLogger(l zerolog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the agent's metrics on reg (default: a private registry).
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// WithMetrics uses m instead of creating collectors (several agents sharing one set).
func WithMetrics(m *metrics.Metrics) Option { return func(o *options) { o.metrics = m } }

// Agent is a running TACACS+ client. It is safe for concurrent use.
type Agent struct {
	sys         *actor.ActorSystem
	pool        *actorkit.Pool
	sup         *actor.PID
	m           *metrics.Metrics
	log         zerolog.Logger
	ids         atomic.Uint64
	maxWait     time.Duration
	grace       time.Duration
	unsubscribe func()
	servers     map[string]Server // by address, for status (names, TLS state); keys are not read
	groups      []Group
	waiters     chan *waiter // idle waiters, at most maxWaiters (registered inboxes: never dropped unclosed)
	closeOnce   sync.Once
	closed      atomic.Bool
}

// New validates cfg and starts an agent. Connections are opened in the background.
func New(cfg Config, opts ...Option) (*Agent, error) {
	o := options{log: zerolog.Nop()}
	for _, f := range opts {
		f(&o)
	}
	if o.metrics == nil {
		reg := o.reg
		if reg == nil {
			reg = prometheus.NewRegistry()
		}
		m, err := metrics.New(reg)
		if err != nil {
			return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "registering metrics", Err: err}
		}
		o.metrics = m
	}
	if cfg.UserTimeout <= 0 {
		cfg.UserTimeout = DefaultUserTimeout
	}
	scfg := supervisor.Config{
		Groups: supervisorGroups(cfg.Groups), DeadTime: cfg.DeadTime, BackoffInitial: cfg.BackoffInitial, BackoffMax: cfg.BackoffMax,
		HoldDown: cfg.SingleConnectHoldDown, MaxConnectionAge: cfg.MaxConnectionAge,
		Metrics: o.metrics, Log: o.log,
	}
	var maxWait time.Duration
	for i, s := range cfg.Servers {
		codec, err := tacplus.NewCodec(tacplus.Options{Key: s.Key, Unencrypted: s.Unencrypted,
			AllowUnencrypted: s.AllowUnencrypted, MaxBodyLen: s.MaxBodyLen})
		if err != nil {
			return nil, fmt.Errorf("servers[%d] %s: %w", i, s.Addr, err)
		}
		ss := supervisor.Server{Addr: s.Addr, Codec: codec, Timeout: s.Timeout, DialTimeout: s.DialTimeout,
			IdleTimeout: s.IdleTimeout, MaxInFlight: s.MaxInFlight, SingleConnect: !s.NoSingleConnect, SourceAddr: s.SourceAddr,
			Dial: s.Dial, Conns: s.ConnectionsPerServer}
		scfg.Servers = append(scfg.Servers, ss)
	}
	userTimeout := cfg.UserTimeout
	perServer := map[string]*metrics.Server{}
	for _, s := range scfg.Servers {
		perServer[s.Addr] = o.metrics.Server(s.Addr)
	}
	// Every actor logs a panic with its stack and counts it (the library logs no stack).
	withPanicLog := actor.WithReceiverMiddleware(actorkit.PanicLogger(o.log, o.metrics.ActorPanics.Inc))
	pool := newPool()
	withPool := actor.WithDispatcher(pool)
	scfg.ConnProps = []actor.PropsOption{withPanicLog, withPool}
	scfg.NewSession = func(start *messages.StartSession, info connection.SessionInfo) *session.Session {
		return session.New(session.Config{Start: start, SessionID: info.SessionID, Epoch: info.Epoch, Server: info.Server,
			UserTimeout: userTimeout, Metrics: perServer[info.Server], Log: o.log})
	}
	scfg.OnSessionPanic = o.metrics.ActorPanics.Inc
	if err := scfg.Validate(); err != nil {
		pool.Stop()
		return nil, err
	}
	for _, s := range scfg.Servers {
		t := s.Timeout
		if s.DialTimeout > 0 {
			t += s.DialTimeout
		} else {
			t += connection.DefaultDialTimeout
		}
		maxWait += t + time.Second
	}
	sys := actorkit.NewSystem(o.log)
	a := &Agent{sys: sys, pool: pool, waiters: make(chan *waiter, maxWaiters), m: o.metrics, log: o.log, maxWait: maxWait, grace: deadlineGrace, servers: map[string]Server{},
		groups: cfg.Groups}
	for _, s := range cfg.Servers {
		s.Key = nil // status needs the name and the TLS state only
		a.servers[s.Addr] = s
	}
	if len(a.groups) == 0 {
		g := Group{Name: "default"}
		for _, s := range cfg.Servers {
			g.Servers = append(g.Servers, s.Addr)
		}
		a.groups = []Group{g}
	}
	a.unsubscribe = actorkit.Subscribe(sys, actorkit.Hooks{
		DeadLetter: func(ev *actor.DeadLetterEvent) {
			o.metrics.DeadLetters.Inc()
			o.log.Debug().Type("message", ev.Message).Msg("dead letter")
		},
		Supervisor: func(ev *actor.SupervisorEvent) {
			o.metrics.SupervisorEvents.WithLabelValues(ev.Directive.String()).Inc()
		},
	})
	props := actor.PropsFromProducer(func() actor.Actor { return supervisor.New(scfg) }, withPanicLog, withPool)
	pid, err := sys.Root.SpawnNamed(props, "supervisor")
	if err != nil {
		a.unsubscribe()
		sys.Shutdown()
		pool.Stop()
		return nil, err
	}
	a.sup = pid
	return a, nil
}

func supervisorGroups(gs []Group) []supervisor.Group {
	out := make([]supervisor.Group, len(gs))
	for i, g := range gs {
		out[i] = supervisor.Group{Name: g.Name, Servers: g.Servers}
	}
	return out
}

// Metrics returns the agent's collectors.
func (a *Agent) Metrics() *metrics.Metrics { return a.m }

// AuthenRequest asks for one authentication (RFC 8907 section 5).
type AuthenRequest = messages.AuthenRequest

// AuthorRequest asks for an authorization (section 6).
type AuthorRequest = messages.AuthorRequest

// AcctRequest is an accounting record (section 7).
type AcctRequest = messages.AcctRequest

// Prompt is a server's question during authentication.
type Prompt struct {
	Message string
	NoEcho  bool                 // do not echo the answer
	Status  tacplus.AuthenStatus // GETUSER, GETPASS or GETDATA
	Server  string
}

// Conversation answers server prompts during authentication, like x/crypto/ssh's
// KeyboardInteractiveChallenge. Returning an error aborts the session (ErrAborted). The answer stays the
// conversation's: the agent copies it at once and never writes it, so the conversation may wipe it after
// its next call or once Authenticate returned; the agent wipes its own copy once the CONTINUE carrying it
// is built.
type Conversation func(ctx context.Context, p Prompt) (answer []byte, err error)

// AuthenReply is a completed authentication.
type AuthenReply struct {
	Server    string
	SessionID uint32
	fsm.AuthenResult
}

// AuthorReply is a completed authorization.
type AuthorReply struct {
	Server    string
	SessionID uint32
	fsm.AuthorResult
}

// AcctReply is an acknowledged accounting record.
type AcctReply struct {
	Server    string
	SessionID uint32
	fsm.AcctResult
}

// RequestOption adjusts one request.
type RequestOption func(*messages.Request)

// InGroup sends the request to the named server group instead of the default one.
func InGroup(name string) RequestOption { return func(r *messages.Request) { r.Group = name } }

// Authenticate runs one authentication. PAP, CHAP and MS-CHAP use req.Password; ASCII login asks conv.
// A nil conv makes any prompt fail the session with ErrAborted. The error is nil only on PASS.
//
// req.Password stays the caller's: the agent copies it before its first step and never writes the
// caller's buffer, which the caller may wipe once Authenticate returned. The agent wipes its own copy when
// the request's answer came from a session (that session built its START from it, and the supervisor runs
// no other session of the request after it). Otherwise (no session ran, the agent closed or its wait ran
// out) a connection might still build a START from it, so it is left to the garbage collector rather than
// send a zeroed password.
func (a *Agent) Authenticate(ctx context.Context, req AuthenRequest, conv Conversation, opts ...RequestOption) (*AuthenReply, error) {
	if req.Action == 0 {
		req.Action = tacplus.ActionLogin
	}
	if req.Type == 0 {
		req.Type = tacplus.AuthenTypeASCII
	}
	if req.Service == 0 {
		req.Service = tacplus.ServiceLogin
	}
	pw := bytes.Clone(req.Password)
	req.Password = pw
	o, err := a.do(ctx, &messages.Request{Authen: &req}, conv, opts)
	if o == nil {
		return nil, err
	}
	if o.SessionID != 0 {
		clear(pw)
	}
	r := &AuthenReply{Server: o.Server, SessionID: o.SessionID}
	if o.Authen != nil {
		r.AuthenResult = *o.Authen
	}
	return r, err
}

// Authorize asks whether a user may run a command or service. The error is nil only on PASS_ADD or
// PASS_REPL; a FAIL is ErrDenied.
func (a *Agent) Authorize(ctx context.Context, req AuthorRequest, opts ...RequestOption) (*AuthorReply, error) {
	o, err := a.do(ctx, &messages.Request{Author: &req}, nil, opts)
	if o == nil {
		return nil, err
	}
	r := &AuthorReply{Server: o.Server, SessionID: o.SessionID}
	if o.Author != nil {
		r.AuthorResult = *o.Author
	}
	return r, err
}

// Account sends one accounting record; it is retried on the next server until one acknowledges it.
func (a *Agent) Account(ctx context.Context, req AcctRequest, opts ...RequestOption) (*AcctReply, error) {
	o, err := a.do(ctx, &messages.Request{Acct: &req}, nil, opts)
	if o == nil {
		return nil, err
	}
	r := &AcctReply{Server: o.Server, SessionID: o.SessionID}
	if o.Acct != nil {
		r.AcctResult = *o.Acct
	}
	return r, err
}

// ErrClosed is returned, as is, for a request made after Close began: nothing of it was sent. A caller that
// replaced the agent (a reload) may send it again to the new one.
var ErrClosed = &tacplus.Error{Class: tacplus.ErrAborted, Msg: "agent is closed"}

// ErrDraining is the cause (errors.Is) of the ErrAborted answer to a request that reached the agent's
// supervisor after Close (or a reload's drain) began: nothing of it was sent. Like ErrClosed, a caller that
// replaced the agent may send the request again to the new one.
var ErrDraining = supervisor.ErrDraining

// maxWaiters bounds the idle waiters kept for reuse (about one per concurrent caller).
const maxWaiters = 256

// inboxSize bounds the messages in flight to one caller: at most one Prompt is outstanding (the session
// waits for its answer) and one Outcome ends the request; the rest is headroom.
const inboxSize = 4

// abortGrace bounds how long a cancelled request waits for its session to confirm the abort; past it the
// caller gets ErrAborted without the confirmation.
const abortGrace = time.Second

// do sends one request and runs its conversation. It blocks only the caller's goroutine. Every answer
// (prompts, then one outcome) comes from the supervisor to an inbox, so that cancellation and the session's
// own timeouts reach the caller whatever step the conversation is at.
func (a *Agent) do(ctx context.Context, req *messages.Request, conv Conversation, opts []RequestOption) (*messages.Outcome, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, &tacplus.Error{Class: tacplus.ErrAborted, Msg: "context done before the request was sent", Err: err}
	}
	for _, f := range opts {
		f(req)
	}
	req.ID = a.ids.Add(1)
	req.Gone = ctx.Done()
	wait := a.maxWait
	if dl, ok := ctx.Deadline(); ok {
		req.Deadline = dl
		wait = time.Until(dl) + a.grace // the session's own timers answer first
	}
	root := a.sys.Root
	w := a.waiter(wait)
	in, timer := w.in, w.timer
	answered := false
	defer func() { a.release(w, answered) }()

	// Cancellation goes to the supervisor, which knows where the request is: queued, on a session waiting
	// for the server (it ends without a packet), or in a conversation (the session sends an ABORT).
	stop := context.AfterFunc(ctx, func() { root.Send(a.sup, &messages.Cancel{ID: req.ID, Reason: "cancelled by caller"}) })
	defer stop()

	root.RequestWithCustomSender(a.sup, req, in.PID())
	cancelled := false
	done := ctx.Done()
	for {
		var res interface{}
		select {
		case res = <-in.C():
		case <-timer.C:
			if cancelled {
				return nil, tacplus.ContextError(ctx.Err(), "the request's context ended; the session did not confirm", nil)
			}
			return nil, &tacplus.Error{Class: tacplus.ErrTimeout, Msg: "no answer from the agent in time"}
		case <-done:
			// Keep waiting for the session to confirm (the AfterFunc sent the Cancel), but not for long.
			cancelled, done = true, nil // a closed channel must leave the select, or it spins
			timer.Reset(abortGrace)
			continue
		}
		switch m := res.(type) {
		case *messages.Outcome:
			if m.ReqID != req.ID {
				continue // a late answer to the inbox's previous request (see release)
			}
			answered = true
			if ctx.Err() != nil && errors.Is(m.Err, tacplus.ErrAborted) {
				// The abort was ours, on the caller's behalf: a passed deadline is a timeout, not a give-up.
				m.Err = tacplus.ContextError(ctx.Err(), "the request's context ended before its answer", m.Err)
			}
			return m, m.Err
		case *messages.Prompt:
			if cancelled || m.ReqID != req.ID {
				continue // the Cancel is on its way to the session; no more questions for the user
			}
			answer, cerr := a.converse(ctx, conv, m)
			if cerr != nil {
				root.Send(a.sup, &messages.Cancel{ID: req.ID, Reason: "conversation ended"})
			} else {
				root.Send(m.Session, &messages.UserInput{ReqID: m.ReqID, Text: answer})
			}
			// The session times the user out on its own (UserTimeout); the wait restarts from the answer.
			if !cancelled {
				timer.Reset(wait)
			}
		case *actor.DeadLetterResponse:
			return nil, ErrClosed // the supervisor is gone: Close ran
		default:
			return nil, &tacplus.Error{Class: tacplus.ErrProtocol, Msg: fmt.Sprintf("unexpected reply %T", res)}
		}
	}
}

// waiter is a request's inbox and its timer, reused across requests (a free list of maxWaiters):
// registering an inbox and making a timer cost about a fifth of a request's allocations.
type waiter struct {
	in    *actorkit.Inbox
	timer *time.Timer
}

// waiter returns a waiter whose inbox is empty and whose timer fires after wait.
func (a *Agent) waiter(wait time.Duration) *waiter {
	var w *waiter
	select {
	case w = <-a.waiters:
	default:
	}
	if w != nil {
		for drained := false; !drained; {
			select {
			case <-w.in.C():
			default:
				drained = true
			}
		}
		w.timer.Reset(wait)
		return w
	}
	return &waiter{in: actorkit.NewInbox(a.sys, inboxSize), timer: time.NewTimer(wait)}
}

// release returns w to the pool when its request got its Outcome: the supervisor sends nothing after a
// request's Outcome but, at a drain's deadline, an abort that crossed a session's direct answer; do
// skips answers to another request id. An inbox whose request ended otherwise (the agent's own timeout,
// closed) may still receive its answers: it is closed instead.
func (a *Agent) release(w *waiter, answered bool) {
	w.timer.Stop()
	if answered && !a.closed.Load() {
		select {
		case a.waiters <- w:
			return
		default:
		}
	}
	w.in.Close()
}

// converse asks conv and returns a copy of its answer, owned by the UserInput it goes in (the session
// wipes it); the conversation's buffer is left as it is.
func (a *Agent) converse(ctx context.Context, conv Conversation, p *messages.Prompt) ([]byte, error) {
	if conv == nil {
		return nil, errors.New("the server asked for input and no conversation was given")
	}
	answer, err := conv(ctx, Prompt{Message: p.Message, NoEcho: p.NoEcho, Status: p.Status, Server: p.Server})
	if err != nil {
		return nil, err
	}
	return bytes.Clone(answer), nil
}

// futureError maps the actor library's future errors onto the taxonomy.
func futureError(err error, req *messages.Request) error {
	switch {
	case errors.Is(err, actor.ErrTimeout):
		return &tacplus.Error{Class: tacplus.ErrTimeout, Msg: "no answer from the agent in time", Err: err}
	case errors.Is(err, actor.ErrDeadLetter):
		return &tacplus.Error{Class: tacplus.ErrConnectionLost, Msg: "the session ended before it could answer", Err: err}
	}
	return &tacplus.Error{Class: tacplus.ErrProtocol, Msg: fmt.Sprintf("request %d", req.ID), Err: err}
}

// Status is a snapshot of the agent: its servers and the requests waiting for an answer.
type Status struct {
	Servers []ServerStatus // in configuration order
	Pending int            // requests waiting for a first answer from a server
}

// ServerStatus describes one server.
type ServerStatus struct {
	Name          string    // the configured name (Server.Name), or Addr
	Addr          string    // "host:port"
	Groups        []string  // the groups it belongs to, in configuration order
	State         string    // "up" (connected), "down" (no connection now, not dead-timed) or "dead" (dead-timed)
	Since         time.Time // when State last changed
	DeadUntil     time.Time // the end of the dead-time; zero when not dead
	SingleConnect bool      // new requests share one connection (negotiated, not held down)
	InFlight      int       // requests running on its connections
	Queued        int       // requests waiting for a free slot on its connections
	Connections   int       // long-lived connections configured (connections_per_server)
	Open          int       // of those, the ones with an open socket now
	LastError     string    // the last error that said something about the server's health
	LastErrorAt   time.Time // when it happened; zero when there was none
	TLS           *TLSState // the last verified TLS handshake; nil for a plaintext server or before the first
}

// Status returns a snapshot of the servers and the requests in flight.
func (a *Agent) Status(ctx context.Context) (*Status, error) {
	wait := 2 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	res, err := a.sys.Root.RequestFuture(a.sup, &messages.Status{}, wait).Result()
	if err != nil {
		return nil, futureError(err, &messages.Request{})
	}
	rep := res.(*messages.StatusReport)
	out := &Status{Pending: rep.Pending, Servers: make([]ServerStatus, 0, len(rep.Servers))}
	for _, s := range rep.Servers {
		st := ServerStatus{Name: s.Addr, Addr: s.Addr, State: s.State, Since: s.Since, DeadUntil: s.DeadUntil,
			SingleConnect: s.SingleConnect, InFlight: s.InFlight, Queued: s.Queued, LastError: s.LastError, LastErrorAt: s.LastErrorAt,
			Connections: s.Connections, Open: s.Open}
		if c, ok := a.servers[s.Addr]; ok {
			if c.Name != "" {
				st.Name = c.Name
			}
			if c.TLS != nil {
				if ts, ok := c.TLS(); ok {
					st.TLS = &ts
				}
			}
		}
		for _, g := range a.groups {
			if slices.Contains(g.Servers, s.Addr) {
				st.Groups = append(st.Groups, g.Name)
			}
		}
		out.Servers = append(out.Servers, st)
	}
	return out, nil
}

// Close drains the agent: new requests fail with ErrAborted, requests in flight may finish until ctx's
// deadline (DefaultDrainTimeout without one), then every actor, connection and goroutine is stopped.
// Requests still running at the deadline are answered with ErrAborted first; their number is returned.
func (a *Agent) Close(ctx context.Context) (abandoned int, err error) {
	a.closeOnce.Do(func() {
		a.closed.Store(true)
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(DefaultDrainTimeout)
		}
		res, ferr := a.sys.Root.RequestFuture(a.sup, &messages.Drain{Deadline: deadline}, time.Until(deadline)+time.Second).Result()
		if ferr == nil {
			if d, ok := res.(*messages.Drained); ok {
				abandoned = d.Abandoned
			}
		} else {
			err = futureError(ferr, &messages.Request{})
		}
		// Poison lets queued messages drain; stopping the supervisor stops the connections, which close
		// their sockets and join their goroutines, and the sessions, which answer their callers.
		if werr := a.sys.Root.PoisonFuture(a.sup).Wait(); werr != nil && err == nil {
			err = werr
		}
		a.unsubscribe()
		a.sys.Shutdown()
		a.pool.Stop()
	})
	return abandoned, err
}

// newPool is the dispatcher of the agent's actors: one worker per CPU, whose stacks stay grown between
// mailbox runs (docs/perf.md, "Actor core": the library's default starts a goroutine per run, and stack
// growth cost 4-15% of the client's CPU), 300 messages per run as the library's default.
func newPool() *actorkit.Pool {
	return actorkit.NewPool(runtime.GOMAXPROCS(0), poolQueue, poolThroughput)
}

const (
	poolQueue      = 1024 // runs waiting for a worker; past that a run gets a goroutine of its own
	poolThroughput = 300  // messages per mailbox run before it yields (the library's default)
)
