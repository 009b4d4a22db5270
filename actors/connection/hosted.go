package connection

import (
	"container/heap"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/tacagent/tacagent/actors/session"
	"github.com/tacagent/tacagent/internal/actorkit"
	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/tacplus"
)

// host is the connection as its sessions see it (session.Host). Sessions are child actors that share
// the connection's mailbox and goroutine: the connection calls a session for each of its messages, and
// what a session hands back (a packet, its end) is queued in local and handled once the current message
// is done, exactly as if it had come through the mailbox, only without the hop.
type host struct{ a *Actor }

func (h *host) Outbound(_ *session.Session, m *messages.Outbound) { h.a.local = append(h.a.local, m) }

func (h *host) Ended(_ *session.Session, m *messages.SessionEnded) { h.a.local = append(h.a.local, m) }

func (h *host) Arm(s *session.Session, d time.Duration, gen uint64) {
	if r, ok := h.a.routes[s.SessionID()]; ok && r.s == s {
		h.a.tm.arm(r, time.Now().Add(d), gen)
		h.a.tm.schedule(h.a.root, h.a.self)
	}
}

func (h *host) Disarm(s *session.Session) {
	if r, ok := h.a.routes[s.SessionID()]; ok && r.s == s {
		h.a.tm.remove(r)
	}
}

func (h *host) Send(pid *actor.PID, msg interface{}) { h.a.root.Send(pid, msg) }

func (h *host) PID() *actor.PID { return h.a.self }

// deliver hands one message to a session.
func (a *Actor) deliver(r *route, msg interface{}) {
	a.run(r, func() { r.s.Receive(a.host, msg) })
}

// run calls f, a step of r's session. A session that panics is stopped, never restarted (a restart would
// replay its START under the same session_id): it answers its caller and ends; the connection goes on.
func (a *Actor) run(r *route, f func()) {
	defer func() {
		if p := recover(); p != nil {
			if a.cfg.OnPanic != nil {
				a.cfg.OnPanic()
			}
			a.log.Error().Uint32("session", r.sid).Bytes("stack", debug.Stack()).Msgf("session panic: %v", p)
			a.stopSession(r)
		}
	}()
	f()
}

// stopSession ends a session that has not completed: it answers its caller (session.Stop). If even that
// panics, the connection answers for it (unless it had answered already) and ends its route, so that
// nobody waits for it.
func (a *Actor) stopSession(r *route) {
	defer func() {
		if p := recover(); p != nil {
			a.log.Error().Uint32("session", r.sid).Msgf("session panic while stopping: %v", p)
			if r.s == nil || !r.s.Answered() {
				now := time.Now()
				a.root.Send(r.replyTo, &messages.Outcome{ReqID: r.reqID, Kind: r.req.Kind(), Server: a.cfg.Addr,
					SessionID: r.sid, Started: now, Finished: now,
					Err: &tacplus.Error{Class: tacplus.ErrConnectionLost, Server: a.cfg.Addr, SessionID: r.sid,
						Msg: "session failed before it completed"}})
			}
			a.local = append(a.local, &messages.SessionEnded{SessionID: r.sid})
		}
	}()
	r.s.Stop(a.host)
}

// stopSessions stops every live session (the connection is stopping or restarting): each answers its
// caller with a typed error.
func (a *Actor) stopSessions() {
	for _, r := range a.routes {
		a.stopSession(r)
	}
	a.tm.stop()
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
