// Package serverfsm is the pure state machine of one TACACS+ server as the supervisor sees it: alive, dead,
// probing; its dead-time; the memory of its single-connect negotiation; the multiplexing hold-down after a
// desynchronised connection; the age limit of its connections.
//
// It does no I/O and reads no clock: every event carries the time it happened, and Step returns the effects
// (logs, a probe to start, a probe timer to arm) for the supervisor actor to carry out, in the style of
// fsm/ for sessions and of etcd-io/raft's Step/Ready.
//
// Rules (issue 12, points 1, 2, 4, 5, 9):
//   - only the server's own failures (connect failure, its own reply timeout, a protocol error, a wrong key)
//     mark it dead; a caller that gave up is not one of them (the supervisor never sends that event);
//   - only a real TACACS+ answer proves it alive: a TCP connect is not an event of this machine;
//   - while dead, one background probe per dead-time: ProbeDue at or after the end of dead-time starts it,
//     a well-formed reply (Answered) revives the server, anything else (ProbeFailed, Failed) starts a new
//     dead-time;
//   - a dead server still answers a login when no server of the group is alive (the supervisor's choice),
//     and the first real answer revives it at once;
//   - the negotiation result is remembered until a failure (or a reload, which builds a new machine);
//   - a desynchronised connection is a protocol error of the server: it puts the server in hold-down (one
//     connection per session until it ends) and starts a dead-time, like any other failure of its own.
package serverfsm

import (
	"errors"
	"fmt"
	"time"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/tacplus"
)

// Defaults.
const (
	DefaultDeadTime = 30 * time.Second
	DefaultHoldDown = time.Hour
	DefaultMaxAge   = 10 * time.Minute
	// MaxAgeJitter is the largest fraction of MaxAge added to or taken from a connection's age limit, so
	// that the connections of a fleet opened together do not all reconnect together.
	MaxAgeJitter = 0.1
)

// Health is the server's state.
type Health uint8

// The states.
const (
	Alive   Health = iota // used for new requests
	Dead                  // skipped while another server of the group is alive; a probe is due at DeadUntil
	Probing               // dead, and a background probe is running
)

func (h Health) String() string {
	switch h {
	case Alive:
		return "alive"
	case Dead:
		return "dead"
	case Probing:
		return "probing"
	}
	return fmt.Sprintf("health(%d)", uint8(h))
}

// Negotiation is what the server answered to the single-connect flag (RFC 8907 section 4.3).
type Negotiation uint8

// The negotiation memory.
const (
	Unknown Negotiation = iota // not asked yet, or forgotten after a failure
	Agreed                     // the server agreed: new connections need not wait for the first reply
	Refused                    // the server refused: one connection per session
)

func (n Negotiation) String() string {
	switch n {
	case Unknown:
		return "unknown"
	case Agreed:
		return "agreed"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("negotiation(%d)", uint8(n))
}

// Config configures a machine; zero durations take the defaults.
type Config struct {
	DeadTime time.Duration
	HoldDown time.Duration // multiplexing hold-down after a desync
	MaxAge   time.Duration // connection age limit (before jitter); <0 no limit
	// SingleConnect says whether the server is configured for single-connect at all.
	SingleConnect bool
}

// Event is an input of Step.
type Event interface{ at() time.Time }

// Failed: the server itself failed: connect refused or timed out, no reply within its own timeout, a
// protocol error, a key mismatch. Cause is for the log (never a secret).
type Failed struct {
	At    time.Time
	Cause string
}

// Answered: a well-formed TACACS+ reply came from the server (a session's reply or the probe's).
type Answered struct{ At time.Time }

// ProbeDue: the probe timer fired.
type ProbeDue struct{ At time.Time }

// ProbeFailed: the probe ended without a well-formed reply.
type ProbeFailed struct {
	At    time.Time
	Cause string
}

// Desynced: a connection could not match a packet to a live session and tore itself down. It is a
// protocol error of the server: a failure of its own (dead-time) and the start of a hold-down.
type Desynced struct {
	At     time.Time
	Reason string
}

// Negotiated: a connection learnt the server's answer to the single-connect flag.
type Negotiated struct {
	At     time.Time
	Agreed bool
}

// ConnectionLost: a connection of the server failed; what was negotiated on it is forgotten.
type ConnectionLost struct{ At time.Time }

func (e Failed) at() time.Time         { return e.At }
func (e Answered) at() time.Time       { return e.At }
func (e ProbeDue) at() time.Time       { return e.At }
func (e ProbeFailed) at() time.Time    { return e.At }
func (e Desynced) at() time.Time       { return e.At }
func (e Negotiated) at() time.Time     { return e.At }
func (e ConnectionLost) at() time.Time { return e.At }

// Effect is an output of Step, carried out by the supervisor actor.
type Effect interface{ effect() }

// LogDead: log once at warn that the server is dead (and set its dead gauge).
type LogDead struct {
	Cause    string
	DeadTime time.Duration
}

// LogAlive: log that the server answers again (and clear its dead gauge).
type LogAlive struct{}

// ArmProbe: fire ProbeDue at At.
type ArmProbe struct{ At time.Time }

// StartProbe: start the background probe session now.
type StartProbe struct{}

// LogHoldDown: log once at warn that the server is used one connection per session until Until (and set
// the hold-down gauge). Reason is the bad-packet reason.
type LogHoldDown struct {
	Until  time.Time
	Reason string
}

func (LogDead) effect()     {}
func (LogAlive) effect()    {}
func (ArmProbe) effect()    {}
func (StartProbe) effect()  {}
func (LogHoldDown) effect() {}

// Machine is one server's state.
type Machine struct {
	cfg       Config
	health    Health
	deadUntil time.Time
	holdUntil time.Time
	neg       Negotiation
}

// New returns an alive server's machine.
func New(cfg Config) *Machine {
	if cfg.DeadTime <= 0 {
		cfg.DeadTime = DefaultDeadTime
	}
	if cfg.HoldDown <= 0 {
		cfg.HoldDown = DefaultHoldDown
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	return &Machine{cfg: cfg}
}

// Health returns the state.
func (m *Machine) Health() Health { return m.health }

// DeadUntil is the end of the current dead-time (zero when alive).
func (m *Machine) DeadUntil() time.Time { return m.deadUntil }

// HoldDownUntil is the end of the multiplexing hold-down (zero or past when none).
func (m *Machine) HoldDownUntil() time.Time { return m.holdUntil }

// Negotiation returns the remembered negotiation result.
func (m *Machine) Negotiation() Negotiation { return m.neg }

// Alive says whether new requests go to the server without waiting for the others.
func (m *Machine) Alive() bool { return m.health == Alive }

// HeldDown says whether the server is in its multiplexing hold-down at now.
func (m *Machine) HeldDown(now time.Time) bool { return now.Before(m.holdUntil) }

// Multiplex says whether a new request may share the server's long-lived connection at now: the server is
// configured for single-connect, has not refused it, and is not in hold-down.
func (m *Machine) Multiplex(now time.Time) bool {
	return m.cfg.SingleConnect && m.neg != Refused && !m.HeldDown(now)
}

// RetireAt is when a connection opened at opened stops taking new sessions: MaxAge later, moved by
// jitter (in [-1, 1], scaled by MaxAgeJitter). Zero when connections never age out.
func (m *Machine) RetireAt(opened time.Time, jitter float64) time.Time {
	if m.cfg.MaxAge < 0 {
		return time.Time{}
	}
	jitter = max(-1, min(1, jitter))
	d := m.cfg.MaxAge + time.Duration(float64(m.cfg.MaxAge)*MaxAgeJitter*jitter)
	return opened.Add(d)
}

// Step applies one event and returns the effects to carry out, in order.
func (m *Machine) Step(ev Event) []Effect {
	now := ev.at()
	switch e := ev.(type) {
	case Failed:
		m.neg = Unknown
		return m.die(now, e.Cause, m.health == Alive)
	case ProbeFailed:
		if m.health != Probing {
			return nil // a probe that ended after the server was revived or failed otherwise
		}
		return m.die(now, e.Cause, false)
	case Answered:
		if m.health == Alive {
			return nil
		}
		m.health, m.deadUntil = Alive, time.Time{}
		return []Effect{LogAlive{}}
	case ProbeDue:
		if m.health != Dead || now.Before(m.deadUntil) {
			return nil // stale timer: revived, probing already, or dead-time renewed since
		}
		m.health = Probing
		return []Effect{StartProbe{}}
	case Desynced:
		m.neg = Unknown
		until := now.Add(m.cfg.HoldDown)
		held := m.HeldDown(now)
		m.holdUntil = until
		var fx []Effect
		if !held {
			fx = []Effect{LogHoldDown{Until: until, Reason: e.Reason}} // once per hold-down; extended silently
		}
		return append(fx, m.die(now, "connection desynchronised: "+e.Reason, m.health == Alive)...)
	case Negotiated:
		if e.Agreed {
			m.neg = Agreed
		} else {
			m.neg = Refused
		}
		return nil
	case ConnectionLost:
		m.neg = Unknown
		return nil
	}
	return nil
}

// die starts a dead-time; log says whether the server was alive (one warn per death, not per failure).
func (m *Machine) die(now time.Time, cause string, log bool) []Effect {
	if m.health == Dead && now.Before(m.deadUntil) {
		return nil // already dead: one probe per dead-time, so the running dead-time stands
	}
	m.health, m.deadUntil = Dead, now.Add(m.cfg.DeadTime)
	var fx []Effect
	if log {
		fx = append(fx, LogDead{Cause: cause, DeadTime: m.cfg.DeadTime})
	}
	return append(fx, ArmProbe{At: m.deadUntil})
}

// Blame says whether a session that ended with err counts as a failure of the server itself (issue 12
// point 4), that is, starts a dead-time. The server's own failures do: no connection (ErrUnreachable), its
// own reply timeout passing (ErrTimeout), a key mismatch (ErrBadSecret), and a protocol error in what it
// sent: a packet the session or the connection refused (a bad-packet reason, tacplus.ReasonOf) or a
// conversation it would not end (fsm.ErrTooManyPrompts). The caller's deadline never does
// (callerDeadline, Outcome.CallerDeadline), whatever the class; nor do a FAIL, an ERROR (the server
// answered), an abort, a configuration error, a protocol error of our own making (an input the session
// refused, fsm.ErrUnexpectedEvent; no session id left), or one lost connection (it may be an idle close
// racing the request: the supervisor retries once on the same server and blames a second loss itself).
func Blame(err error, callerDeadline bool) bool {
	if err == nil || callerDeadline {
		return false
	}
	switch tacplus.ClassOf(err) {
	case tacplus.ErrUnreachable, tacplus.ErrTimeout, tacplus.ErrBadSecret:
		return true
	case tacplus.ErrProtocol:
		return serverProtocolError(err)
	case tacplus.ErrConnectionLost:
		// A connection that desynchronised fails its other sessions with ConnectionLost whose cause is the
		// server's protocol error.
		return errors.Is(err, tacplus.ErrProtocol) && serverProtocolError(err)
	}
	return false
}

// serverProtocolError says whether a protocol error was caused by what the server sent.
func serverProtocolError(err error) bool {
	if errors.Is(err, fsm.ErrUnexpectedEvent) || errors.Is(err, fsm.ErrFinished) {
		return false // the session refused an event of ours (the caller's input, a late timer)
	}
	return tacplus.ReasonOf(err) != 0 || errors.Is(err, fsm.ErrTooManyPrompts)
}
