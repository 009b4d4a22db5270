package session

import (
	"crypto/rand"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
)

// Config configures one session.
type Config struct {
	Start       *messages.StartSession
	SessionID   uint32
	Epoch       uint64 // the connection epoch the session runs on
	Server      string
	UserTimeout time.Duration // how long to wait for an answer to a prompt
	MaxPrompts  int           // fsm.AuthenConfig.MaxPrompts: 0 default (16), <0 unbounded
	Metrics     *metrics.Server
	Log         zerolog.Logger
}

// Host is what a session runs on: its session actor, a child actor of its connection. The session reaches
// the connection only through Host, whose calls become messages to the connection (handled after the
// message the connection is processing, never re-entering it), and is called by one goroutine at a time.
type Host interface {
	// Outbound hands a packet to the connection for writing.
	Outbound(s *Session, m *messages.Outbound)
	// Ended reports the session's end; the session sends nothing after it.
	Ended(s *Session, m *messages.SessionEnded)
	// Arm sets the session's one timer: Receive gets SessionTimeout{Gen: gen} after d, unless Arm or
	// Disarm is called first. Disarm cancels it.
	Arm(s *Session, d time.Duration, gen uint64)
	Disarm(s *Session)
	// Send delivers msg to an actor outside the connection (the request's ReplyTo).
	Send(pid *actor.PID, msg interface{})
	// PID is where the caller sends UserInput for this session (with the request's ReqID): the session
	// actor.
	PID() *actor.PID
}

// Session drives one fsm machine for one request. It is not safe for concurrent use: its host calls it
// from one goroutine.
type Session struct {
	cfg      Config
	m        fsm.Machine
	kind     messages.Kind
	done     bool
	answered bool   // the caller has its Outcome
	lost     bool   // ended by ConnectionLost: the connection counts it as lost work
	desync   string // ended by refusing a routed packet: the bad-packet reason, for the connection
	callerDL bool   // the armed timer is the request's deadline, not the server's or the user's timeout
	armed    bool
	started  time.Time
	timerGen uint64
}

// New returns a session for cfg; Start runs it.
func New(cfg Config) *Session { return &Session{cfg: cfg} }

// SessionID is the session's id on its connection.
func (a *Session) SessionID() uint32 { return a.cfg.SessionID }

// Done reports whether the session has completed (it may have failed before its answer went out).
func (a *Session) Done() bool { return a.done }

// Answered reports whether the session's Outcome went to its caller.
func (a *Session) Answered() bool { return a.answered }

// Start builds the machine and sends the first packet.
func (a *Session) Start(h Host) {
	a.started = time.Now()
	a.kind = a.cfg.Start.Req.Kind()
	a.cfg.Metrics.SessionStarted(a.kind.String())
	m, err := newMachine(a.cfg.Start.Req, a.cfg.SessionID, a.cfg.MaxPrompts)
	if err != nil {
		a.complete(h, nil, withServer(err, a.cfg.Server))
		return
	}
	a.m = m
	a.step(h, fsm.Start())
}

// Receive handles one message: Inbound, UserInput, Abort, SessionTimeout or ConnectionLost.
func (a *Session) Receive(h Host, msg interface{}) {
	switch msg := msg.(type) {
	case *messages.Inbound:
		if msg.Err != nil {
			a.step(h, fsm.BadPacket(msg.Header, msg.Err))
		} else {
			a.step(h, fsm.Packet(msg.Header, msg.Body))
		}
	case *messages.UserInput:
		// The message is this session's: once the CONTINUE is built (it holds its own copy), the answer,
		// often a password, is wiped.
		a.step(h, fsm.Input(msg.Text))
		clear(msg.Text)
	case *messages.Abort:
		a.step(h, fsm.Abort(msg.Reason))
	case *messages.SessionTimeout:
		if msg.Gen == a.timerGen && a.armed {
			a.armed = false
			a.step(h, fsm.Timeout())
		}
	case *messages.ConnectionLost:
		if msg.Epoch == a.cfg.Epoch {
			a.lost = true
			a.step(h, fsm.ConnectionLost(msg.Err))
		}
	}
}

// Stop ends a session that has not completed (its connection is going away, or the session panicked):
// the caller still gets a typed answer, and the host an Ended.
func (a *Session) Stop(h Host) {
	if !a.done {
		a.complete(h, nil, &tacplus.Error{Class: tacplus.ErrConnectionLost, Server: a.cfg.Server,
			SessionID: a.cfg.SessionID, State: a.stateName(), Msg: "session stopped before it completed"})
	}
}

// step feeds one event to the machine and carries out its effects.
func (a *Session) step(h Host, ev fsm.Event) {
	if a.done || a.m == nil {
		return
	}
	effects, err := a.m.Step(ev)
	if err != nil {
		// The machine refused the event in this state (a late packet, input when none is due): nothing
		// changes. Late packets are counted as bad packets by reason "session".
		if ev.Kind == fsm.EventPacket {
			a.cfg.Metrics.BadPacket(tacplus.ReasonSession.String())
		}
		a.cfg.Log.Debug().Err(err).Str("event", ev.Kind.String()).Uint32("session", a.cfg.SessionID).Msg("event refused")
		return
	}
	for i := range effects {
		e := &effects[i]
		switch e.Kind {
		case fsm.EffectSend:
			h.Outbound(a, &messages.Outbound{Epoch: a.cfg.Epoch, Header: e.Header, Body: e.Body})
		case fsm.EffectPrompt:
			h.Send(a.cfg.Start.ReplyTo, &messages.Prompt{ReqID: a.cfg.Start.Req.ID, Session: h.PID(), Status: e.Prompt.Status,
				Message: e.Prompt.Message, NoEcho: e.Prompt.NoEcho, Server: a.cfg.Server})
		case fsm.EffectComplete:
			if ev.Kind == fsm.EventPacket && ev.Err == nil {
				// A packet that decoded but broke the session's rules (seq_no, type, version, status):
				// counted by reason here; codec errors were counted by the connection.
				if r := tacplus.ReasonOf(e.Err); r != 0 {
					a.cfg.Metrics.BadPacket(r.String())
				}
				if r := tacplus.ReasonOf(e.Err); r != 0 && errors.Is(e.Err, tacplus.ErrProtocol) {
					// The connection routed this packet here and the session refused it as malformed for
					// the session (version, status, body): the stream is in doubt (issue 12 points 1 and 7).
					// A well-formed reply the session merely ends on (too many prompts) is not.
					a.desync = r.String()
				}
			}
			a.complete(h, e, withServer(e.Err, a.cfg.Server))
			return
		}
	}
	a.arm(h)
}

// arm sets the timer for whoever's turn it is: the server's reply or the user's answer.
func (a *Session) arm(h Host) {
	var d time.Duration
	switch a.m.Wait() {
	case fsm.WaitServer:
		d = a.cfg.Start.Timeout
	case fsm.WaitUser:
		d = a.cfg.UserTimeout
	default:
		if a.armed {
			a.armed = false
			h.Disarm(a)
		}
		return
	}
	// The user's answer is the caller's side, like its deadline: a user who does not answer in time says
	// nothing about the server's health (issue 12 point 4).
	a.callerDL = a.m.Wait() == fsm.WaitUser
	if dl := a.cfg.Start.Req.Deadline; !dl.IsZero() {
		if until := time.Until(dl); until <= d {
			d, a.callerDL = until, true
		}
	}
	a.timerGen++
	a.armed = true
	h.Arm(a, max(d, 0), a.timerGen)
}

func (a *Session) complete(h Host, e *fsm.Effect, err error) {
	a.done = true
	if a.armed {
		a.armed = false
		h.Disarm(a)
	}
	o := &messages.Outcome{
		ReqID: a.cfg.Start.Req.ID, Kind: a.kind, Server: a.cfg.Server, SessionID: a.cfg.SessionID, Err: err,
		Started: a.started, Finished: time.Now(),
	}
	if a.m != nil {
		// Safe to send elsewhere only when the server never answered (docs/architecture.md, retry safety).
		o.Retryable = !a.m.Replied()
		o.SecretSent = a.m.SecretSent()
	}
	o.CallerDeadline = a.callerDL && errors.Is(err, tacplus.ErrTimeout)
	if e != nil {
		o.Authen, o.Author, o.Acct = e.Authen, e.Author, e.Acct
	}
	// Counted before anyone hears of it, so that a caller that reads the metrics after its answer sees it.
	outcome := "ok"
	if err != nil {
		outcome = tacplus.ClassName(err)
	}
	a.cfg.Metrics.SessionFinished(a.kind.String(), outcome, o.Finished.Sub(a.started).Seconds())
	if c := a.cfg.Start.Caller; c != nil && o.Final() {
		// Straight to the caller. The supervisor's copy goes first: whatever the caller sends the
		// supervisor after its answer queues behind it, so the supervisor's books (pending requests,
		// status) are never behind what the caller saw.
		d := *o
		d.Delivered = true
		h.Send(a.cfg.Start.ReplyTo, &d)
		h.Send(c, o)
	} else {
		h.Send(a.cfg.Start.ReplyTo, o)
	}
	a.answered = true
	timedOut := errors.Is(err, tacplus.ErrTimeout) && a.m != nil && !a.m.Replied()
	h.Ended(a, &messages.SessionEnded{SessionID: a.cfg.SessionID, Lost: a.lost, TimedOut: timedOut && !o.CallerDeadline, Desync: a.desync})
}

func (a *Session) stateName() string {
	if a.m == nil {
		return "new"
	}
	return a.m.StateName()
}

// withServer fills in the server of a taxonomy error.
func withServer(err error, server string) error {
	if err == nil {
		return nil
	}
	var te *tacplus.Error
	if errors.As(err, &te) && te.Server == "" {
		te.Server = server
	}
	return err
}

// newMachine builds the state machine for a request. CHAP and MS-CHAP challenges come from crypto/rand
// here, since the machines draw no randomness.
func newMachine(req *messages.Request, sid uint32, maxPrompts int) (fsm.Machine, error) {
	switch {
	case req.Authen != nil:
		r := req.Authen
		cfg := fsm.AuthenConfig{SessionID: sid, Action: r.Action, Type: r.Type, Service: r.Service, PrivLvl: r.PrivLvl,
			User: r.User, Port: r.Port, RemAddr: r.RemAddr, Password: []byte(r.Password), Prepared: r.Prepared,
			MaxPrompts: maxPrompts}
		// The machine reads Password only here, building the START; the request's owner wipes it. A prepared
		// CHAP or MS-CHAP START (the loopback front end's client computed the response) needs no challenge.
		if len(r.Prepared) == 0 {
			if err := challenges(&cfg); err != nil {
				return nil, err
			}
		}
		return fsm.NewAuthen(cfg)
	case req.Author != nil:
		r := req.Author
		return fsm.NewAuthor(fsm.AuthorConfig{SessionID: sid, Method: r.Method, PrivLvl: r.PrivLvl, Type: r.Type,
			Service: r.Service, User: r.User, Port: r.Port, RemAddr: r.RemAddr, Args: r.Args})
	case req.Acct != nil:
		r := req.Acct
		return fsm.NewAcct(fsm.AcctConfig{SessionID: sid, Flags: r.Flags, Method: r.Method, PrivLvl: r.PrivLvl,
			Type: r.Type, Service: r.Service, User: r.User, Port: r.Port, RemAddr: r.RemAddr, Args: r.Args})
	}
	return nil, &tacplus.Error{Class: tacplus.ErrConfig, Msg: "empty request"}
}

// challenges fills the random inputs of CHAP (RFC 1994), MS-CHAP (RFC 2433) and MS-CHAP-V2 (RFC 2759).
func challenges(cfg *fsm.AuthenConfig) error {
	var n, peer int
	switch cfg.Type {
	case tacplus.AuthenTypeCHAP:
		n = 16
	case tacplus.AuthenTypeMSCHAP:
		n = 8
	case tacplus.AuthenTypeMSCHAPv2:
		n, peer = 16, 16
	default:
		return nil
	}
	buf := make([]byte, 1+n+peer)
	if _, err := rand.Read(buf); err != nil {
		return &tacplus.Error{Class: tacplus.ErrConfig, Msg: "no randomness for the challenge", Err: err}
	}
	cfg.ChallengeID, cfg.Challenge = buf[0], buf[1:1+n]
	if peer > 0 {
		cfg.PeerChallenge = buf[1+n:]
	}
	return nil
}
