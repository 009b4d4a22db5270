package session

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/tacagent/tacagent/internal/actorkit"
	"github.com/tacagent/tacagent/messages"
)

// Props runs one Session as an actor of its own, under a stand-in parent: every Outbound and SessionEnded
// goes to the parent as a message, the session's timer is the actor library's scheduler, and the actor
// stops after Ended. It lets the tests drive a session with plain messages; the connection's session actors
// (actors/connection) run the same Session code, with the connection's timer heap and reuse.
func Props(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &standalone{s: New(cfg)} })
}

type standalone struct {
	s      *Session
	ctx    actor.Context
	timer  actorkit.Timer
	cancel func()
}

func (a *standalone) Receive(ctx actor.Context) {
	a.ctx = ctx
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.timer = actorkit.NewTimer(ctx.ActorSystem().Root)
		a.s.Start(a)
	case *actor.Stopping:
		a.s.Stop(a)
	case *actor.Stopped, *actor.Restarting:
	default:
		a.s.Receive(a, m)
	}
}

func (a *standalone) Outbound(_ *Session, m *messages.Outbound) { a.ctx.Send(a.ctx.Parent(), m) }

func (a *standalone) Ended(_ *Session, m *messages.SessionEnded) {
	a.ctx.Send(a.ctx.Parent(), m)
	a.ctx.Stop(a.ctx.Self())
}

func (a *standalone) Arm(_ *Session, d time.Duration, gen uint64) {
	a.Disarm(nil)
	a.cancel = a.timer.After(d, a.ctx.Self(), &messages.SessionTimeout{Gen: gen})
}

func (a *standalone) Disarm(*Session) {
	if a.cancel != nil {
		a.cancel()
		a.cancel = nil
	}
}

func (a *standalone) Send(pid *actor.PID, msg interface{}) { a.ctx.Send(pid, msg) }

func (a *standalone) PID() *actor.PID { return a.ctx.Self() }
