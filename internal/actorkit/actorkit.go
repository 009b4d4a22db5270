package actorkit

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/scheduler"
	"github.com/rs/zerolog"
)

// NewSystem returns an actor system whose library logs go to log at warn level and above, with the
// library's own dead-letter request logging off (Hooks count dead letters instead).
func NewSystem(log zerolog.Logger) *actor.ActorSystem {
	zl := log.With().Str("lib", "protoactor").Logger().Level(max(log.GetLevel(), zerolog.WarnLevel))
	return actor.NewActorSystem(
		actor.WithLoggerFactory(func(as *actor.ActorSystem) *slog.Logger {
			return slog.New(zerolog.NewSlogHandler(zl))
		}),
		actor.WithDeadLetterRequestLogging(false),
	)
}

// Hooks are called from the EventStream, on the publisher's goroutine: they must be quick and must not
// block.
type Hooks struct {
	DeadLetter func(ev *actor.DeadLetterEvent)
	Supervisor func(ev *actor.SupervisorEvent)
}

// Subscribe attaches h to the system's EventStream and returns a function that detaches it.
func Subscribe(sys *actor.ActorSystem, h Hooks) (unsubscribe func()) {
	sub := sys.EventStream.Subscribe(func(ev interface{}) {
		switch ev := ev.(type) {
		case *actor.DeadLetterEvent:
			if h.DeadLetter != nil {
				h.DeadLetter(ev)
			}
		case *actor.SupervisorEvent:
			if h.Supervisor != nil {
				h.Supervisor(ev)
			}
		}
	})
	var _ *eventstream.Subscription = sub
	return func() { sys.EventStream.Unsubscribe(sub) }
}

// PanicLogger is a receiver middleware that logs a panic's value and stack, calls onPanic (for a metric),
// then re-panics so that the actor's supervisor decides what happens next.
func PanicLogger(log zerolog.Logger, onPanic func()) actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			defer func() {
				if r := recover(); r != nil {
					if onPanic != nil {
						onPanic()
					}
					log.Error().Str("actor", c.Self().Id).Str("message", fmt.Sprintf("%T", env.Message)).
						Bytes("stack", debug.Stack()).Msgf("actor panic: %v", r)
					panic(r)
				}
			}()
			next(c, env)
		}
	}
}

// Timer sends generation-tagged timeouts to actors. An actor keeps the generation of its current timer and
// ignores a timeout whose generation is older, which makes cancellation races harmless.
type Timer struct{ s *scheduler.TimerScheduler }

// NewTimer returns a Timer that sends through root.
func NewTimer(root actor.SenderContext) Timer { return Timer{s: scheduler.NewTimerScheduler(root)} }

// After sends msg to pid once after d. The returned function cancels it; a message already sent is not
// recalled, so receivers must still check generations.
func (t Timer) After(d time.Duration, pid *actor.PID, msg interface{}) (cancel func()) {
	return t.s.SendOnce(d, pid, msg)
}

// QuietMessage marks message types that may legitimately arrive after their receiver stopped (late reader
// messages, expired timers): the library then does not log them as dead letters.
type QuietMessage struct{}

// IgnoreDeadLetterLogging implements the library's marker interface.
func (QuietMessage) IgnoreDeadLetterLogging() {}
