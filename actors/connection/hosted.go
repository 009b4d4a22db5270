package connection

import (
	"container/heap"
	"runtime/debug"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/actors/session"
	"github.com/tacagent/tacagent/internal/actorkit"
	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/tacplus"
)

// Session actors. Every session runs in a child actor of its connection (ctx.Spawn, so it is one of the
// connection's ctx.Children()), a small wrapper around a session.Session. The children run on a
// synchronized dispatcher: a message the connection sends a child idle at that moment is processed at once
// on the connection's own goroutine, inside the Send, so no goroutine is started per mailbox run; what the
// child sends its parent lands in the parent's mailbox, which is already running, and is processed right
// after the current message. A message from anyone else (UserInput, sent straight to the session actor by
// the caller) is processed on the sender's goroutine the same way; the mailbox keeps the child's messages
// one at a time whoever runs them.
//
// Session actors are reused: when a session ends, its actor goes on the connection's free list (at most
// maxFree) and the next session is handed to it with a runSession message. Each use is tagged by its route
// (the connection's record of the session): what a child sends back (fromSession) carries the route it was
// given, and the connection drops anything whose route is no longer live (a previous use, or the actor
// instance before a restart). The connection's messages to a child need no tag: the mailbox is in order, a child
// gets its next runSession only after its previous session ended, and an ended session ignores everything.

// maxFree bounds the idle session actors a connection keeps for reuse; the rest are stopped.
const maxFree = 64

// syncDispatcher runs a session actor's mailbox on the goroutine that sends to it.
var syncDispatcher = actor.NewSynchronizedDispatcher(300)

// child is the connection's record of one session actor.
type child struct {
	owner  *Actor // the connection actor instance that spawned it
	pid    *actor.PID
	r      *route // the session it runs; nil while it is free
	broken bool   // it recovered from a panic: stopped once its session has ended, never reused
	// run is the message that hands the actor its next session. It is rewritten only while the actor is
	// free: the actor read it before it reported its previous session's end.
	run runSession
}

// runSession hands a session actor its next session.
type runSession struct {
	r     *route
	s     *session.Session
	start *messages.StartSession
}

// fromSession is what a session actor hands its connection while it handles one message, in one message:
// the packets the session sent, in order, then the last state of its timer, then whether the actor
// panicked, then the session's end. Every field but r is optional.
type fromSession struct {
	actorkit.QuietMessage // the connection may be stopping
	r                     *route
	out                   *messages.Outbound
	more                  []*messages.Outbound // a second packet and after (rare)
	timer                 timerOp
	at                    time.Time
	gen                   uint64
	panicked              bool
	ended                 *messages.SessionEnded
}

// batches recycles fromSession messages: the connection puts each back once it has applied it.
var batches = sync.Pool{New: func() any { return new(fromSession) }}

type timerOp uint8

const (
	timerKeep timerOp = iota
	timerArm
	timerOff
)

// sessionProps returns the props of the connection's session actors.
func (a *Actor) sessionProps() *actor.Props {
	server, onPanic, log := a.cfg.Addr, a.cfg.OnPanic, a.log
	return actor.PropsFromProducer(func() actor.Actor {
		return &sessionActor{server: server, onPanic: onPanic, log: log}
	}, actor.WithDispatcher(syncDispatcher))
}

// sessionActor is a session actor: it owns the session it runs (session.Session is not safe for concurrent
// use; only this actor calls it) and is that session's session.Host. It never reads the connection's
// state: the route it holds is a tag it hands back.
type sessionActor struct {
	server  string
	onPanic func()
	log     zerolog.Logger
	ctx     actor.Context
	parent  *actor.PID

	r        *route
	s        *session.Session
	start    *messages.StartSession
	answered bool // the caller got an Outcome from this use
	ended    bool // the session reported its end
	// While the actor handles a message: what goes to the connection (sent first), and what goes to the
	// caller (prompts, outcomes; sent after), so that the connection always knows of a session's end and
	// packets before its caller can react to its answer.
	batch *fromSession
	held  []held
}

type held struct {
	to  *actor.PID
	msg interface{}
}

// Receive implements actor.Actor.
func (a *sessionActor) Receive(ctx actor.Context) {
	defer a.recoverPanic()
	switch m := ctx.Message().(type) {
	case *runSession:
		a.r, a.s, a.start, a.answered, a.ended = m.r, m.s, m.start, false, false
		a.s.Start(a)
	case *messages.Inbound, *messages.SessionTimeout, *messages.ConnectionLost, *messages.Abort:
		if a.s != nil {
			a.s.Receive(a, m)
		}
	case *messages.UserInput:
		// From the caller, straight to this actor: only the answer for the request it runs now counts.
		if a.s != nil && m.ReqID == a.start.Req.ID {
			a.s.Receive(a, m)
		}
		clear(m.Text) // the answer, often a password, is wiped (Receive already did when it was used)
	case *actor.Started:
		a.ctx, a.parent = ctx, ctx.Parent()
	case *actor.Stopping:
		// The connection is stopping or restarting (or stopped this actor): a session still running
		// answers its caller with a typed error and ends.
		a.stopSession()
	}
	a.flush()
}

// recoverPanic: a session that panics is stopped, never restarted (a restart would replay its START under the
// same session_id). It answers its caller, ends, and its actor is retired; the connection goes on.
func (a *sessionActor) recoverPanic() {
	p := recover()
	if p == nil {
		return
	}
	if a.onPanic != nil {
		a.onPanic()
	}
	var sid uint32
	if a.s != nil {
		sid = a.s.SessionID()
	}
	a.log.Error().Uint32("session", sid).Bytes("stack", debug.Stack()).Msgf("session panic: %v", p)
	if a.r != nil {
		a.toParent().panicked = true
	}
	a.stopSession()
	a.flush()
}

// stopSession ends the current session if it has not ended: session.Stop answers its caller with
// ErrConnectionLost. If even that fails, the caller is answered and the connection told here, so that
// neither waits for a session that is gone.
func (a *sessionActor) stopSession() {
	if a.s == nil || a.ended {
		return
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				a.log.Error().Uint32("session", a.s.SessionID()).Msgf("session panic while stopping: %v", p)
			}
		}()
		a.s.Stop(a)
	}()
	if !a.answered {
		now := time.Now()
		a.Send(a.start.ReplyTo, &messages.Outcome{ReqID: a.start.Req.ID, Kind: a.start.Req.Kind(), Server: a.server,
			SessionID: a.s.SessionID(), Started: now, Finished: now,
			Err: &tacplus.Error{Class: tacplus.ErrConnectionLost, Server: a.server, SessionID: a.s.SessionID(),
				Msg: "session failed before it completed"}})
	}
	if !a.ended {
		a.Ended(a.s, &messages.SessionEnded{SessionID: a.s.SessionID()})
	}
}

// toParent returns the message being built for the connection.
func (a *sessionActor) toParent() *fromSession {
	if a.batch == nil {
		a.batch = batches.Get().(*fromSession)
		a.batch.r = a.r
	}
	return a.batch
}

// flush sends what the actor gathered while handling a message: first to the connection, then the rest.
func (a *sessionActor) flush() {
	if a.batch != nil {
		a.ctx.Send(a.parent, a.batch)
		a.batch = nil
	}
	for i := range a.held {
		a.ctx.Send(a.held[i].to, a.held[i].msg)
		a.held[i] = held{}
	}
	a.held = a.held[:0]
	if a.ended {
		a.s, a.start = nil, nil // an idle actor keeps nothing of its last request
	}
}

// The session.Host of the session the actor runs.

func (a *sessionActor) Outbound(_ *session.Session, m *messages.Outbound) {
	if b := a.toParent(); b.out == nil {
		b.out = m
	} else {
		b.more = append(b.more, m)
	}
}

func (a *sessionActor) Ended(_ *session.Session, m *messages.SessionEnded) {
	a.ended = true
	a.toParent().ended = m
}

func (a *sessionActor) Arm(_ *session.Session, d time.Duration, gen uint64) {
	b := a.toParent()
	b.timer, b.at, b.gen = timerArm, time.Now().Add(d), gen
}

func (a *sessionActor) Disarm(*session.Session) { a.toParent().timer = timerOff }

func (a *sessionActor) Send(pid *actor.PID, msg interface{}) {
	if _, ok := msg.(*messages.Outcome); ok {
		a.answered = true
	}
	a.held = append(a.held, held{to: pid, msg: msg})
}

func (a *sessionActor) PID() *actor.PID { return a.ctx.Self() }

// The connection's side.

// runOn hands the session of r to a session actor: a free one, or a new child.
func (a *Actor) runOn(ctx actor.Context, r *route, s *session.Session, start *messages.StartSession) {
	var c *child
	if n := len(a.free); n > 0 {
		c = a.free[n-1]
		a.free[n-1] = nil
		a.free = a.free[:n-1]
	} else {
		if a.sprops == nil {
			a.sprops = a.sessionProps()
		}
		c = &child{owner: a, pid: ctx.Spawn(a.sprops)}
	}
	c.r, r.c = r, c
	c.run = runSession{r: r, s: s, start: start}
	ctx.Send(c.pid, &c.run)
}

// live reports whether r is a session of this connection that has not ended.
func (a *Actor) live(r *route) bool { return r != nil && a.routes[r.sid] == r }

// deliver hands one message to a session.
func (a *Actor) deliver(r *route, msg interface{}) { a.ctx.Send(r.c.pid, msg) }

// fromSession applies what a session actor handed the connection, then recycles the message.
func (a *Actor) fromSession(ctx actor.Context, m *fromSession) {
	defer recycle(m)
	if a.down {
		return // the connection is stopping or restarting: its sessions answer their callers as they stop
	}
	if m.panicked {
		a.retireChild(ctx, m.r.c)
	}
	if !a.live(m.r) {
		return // a previous use of the actor, or the connection's instance before a restart
	}
	if m.out != nil {
		a.outbound(ctx, m.out)
		for _, o := range m.more {
			a.outbound(ctx, o)
		}
	}
	switch m.timer {
	case timerArm:
		a.tm.arm(m.r, m.at, m.gen)
		a.tm.schedule(a.root, a.self)
	case timerOff:
		a.tm.remove(m.r)
	}
	if m.ended != nil {
		a.sessionEnded(ctx, m.ended)
	}
}

func recycle(m *fromSession) {
	clear(m.more)
	*m = fromSession{more: m.more[:0]}
	batches.Put(m)
}

// release takes back the actor of a session that ended: it is kept for the next session, or stopped when
// the free list is full or it panicked.
func (a *Actor) release(ctx actor.Context, c *child) {
	c.r, c.run = nil, runSession{}
	if c.broken || len(a.free) >= maxFree {
		ctx.Stop(c.pid)
		return
	}
	a.free = append(a.free, c)
}

// retireChild marks the actor of a session that panicked: it is stopped now if it is free, else when its
// session ends, and never reused.
func (a *Actor) retireChild(ctx actor.Context, c *child) {
	if c == nil || c.broken || c.owner != a {
		return
	}
	c.broken = true
	if c.r != nil {
		return
	}
	for i, f := range a.free {
		if f == c {
			a.free = append(a.free[:i], a.free[i+1:]...)
			ctx.Stop(c.pid)
			return
		}
	}
}

// terminated forgets a session actor that stopped.
func (a *Actor) terminated(who *actor.PID) {
	for i, f := range a.free {
		if f.pid.Equal(who) {
			a.free = append(a.free[:i], a.free[i+1:]...)
			return
		}
	}
}

// timerTick is the connection's one timer firing; timersFired finds which sessions' timers are due.
type timerTick struct{ actorkit.QuietMessage }

var tick = &timerTick{}

// timersFired delivers SessionTimeout to every session whose timer is due, then sets the timer for the
// next one.
func (a *Actor) timersFired() {
	a.tm.at = time.Time{}
	now := time.Now()
	for len(a.tm.h) > 0 && !a.tm.h[0].at.After(now) {
		r := a.tm.h[0]
		a.tm.remove(r)
		a.deliver(r, &messages.SessionTimeout{Gen: r.gen})
	}
	a.tm.schedule(a.root, a.self)
}

// sessionTimers is the one timer mechanism of a connection: a heap of the sessions' deadlines and one
// runtime timer set for the earliest. Arming, re-arming and cancelling a session's timer is a heap
// operation; no timer, goroutine or message exists per session.
type sessionTimers struct {
	h  routeHeap
	t  *time.Timer
	at time.Time // when t is set to fire; zero when it is not set
}

func (t *sessionTimers) arm(r *route, at time.Time, gen uint64) {
	r.at, r.gen = at, gen
	if r.hidx >= 0 {
		heap.Fix(&t.h, r.hidx)
	} else {
		heap.Push(&t.h, r)
	}
}

func (t *sessionTimers) remove(r *route) {
	if r.hidx >= 0 {
		heap.Remove(&t.h, r.hidx)
	}
}

// schedule sets the runtime timer for the earliest deadline, unless it is already set no later than that.
// A timer that fires early (its deadline was removed) finds nothing due and sets itself again.
func (t *sessionTimers) schedule(root *actor.RootContext, self *actor.PID) {
	if len(t.h) == 0 {
		return
	}
	next := t.h[0].at
	if !t.at.IsZero() && !next.Before(t.at) {
		return
	}
	t.at = next
	d := max(time.Until(next), 0)
	if t.t == nil {
		t.t = time.AfterFunc(d, func() { root.Send(self, tick) })
		return
	}
	t.t.Reset(d)
}

func (t *sessionTimers) stop() {
	if t.t != nil {
		t.t.Stop()
	}
	t.at = time.Time{}
	for len(t.h) > 0 {
		t.remove(t.h[0])
	}
}

// routeHeap orders routes by their timer's deadline (container/heap).
type routeHeap []*route

func (h routeHeap) Len() int           { return len(h) }
func (h routeHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h routeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *routeHeap) Push(x any) {
	r := x.(*route)
	r.hidx = len(*h)
	*h = append(*h, r)
}
func (h *routeHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	r.hidx = -1
	*h = old[:len(old)-1]
	return r
}
