package actorkit

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
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
		// The library starts a goroutine per throttle period on the first logged dead letter; a short period
		// keeps it from outliving the system by much (goleak in every test). Hooks count dead letters anyway.
		actor.WithDeadLetterThrottleInterval(deadLetterThrottle),
	)
}

// deadLetterThrottle is the period of the library's dead-letter log throttle.
const deadLetterThrottle = 10 * time.Millisecond

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

// Expected marks a panic value that is an actor's deliberate way of failing (a connection actor whose socket
// died hands the decision to its supervisor by panicking): PanicLogger neither logs nor counts it.
type Expected interface{ ExpectedFailure() }

// PanicLogger is a receiver middleware that logs a panic's value and stack, calls onPanic (for a metric),
// then re-panics so that the actor's supervisor decides what happens next. Values implementing Expected
// pass through silently.
func PanicLogger(log zerolog.Logger, onPanic func()) actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(Expected); ok {
						panic(r)
					}
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

// Inbox is a mailbox without an actor: a registered process whose messages land in a buffered channel. A
// plain goroutine uses it as the sender of its requests when it needs more than one answer (a Future takes
// exactly one): a login conversation gets prompts and then an outcome. It owns no goroutine.
type Inbox struct {
	sys  *actor.ActorSystem
	pid  *actor.PID
	proc *inboxProcess
}

type inboxProcess struct{ c chan interface{} }

// NewInbox registers an inbox that holds up to size undelivered messages. The protocol that uses it must
// bound the messages in flight to size: a message that finds the channel full is dropped, because an
// actor must never block on a caller.
func NewInbox(sys *actor.ActorSystem, size int) *Inbox {
	p := &inboxProcess{c: make(chan interface{}, size)}
	pid, _ := sys.ProcessRegistry.Add(p, "inbox"+sys.ProcessRegistry.NextId())
	return &Inbox{sys: sys, pid: pid, proc: p}
}

// PID is the inbox's address, to pass as the sender of requests.
func (i *Inbox) PID() *actor.PID { return i.pid }

// C delivers the messages, envelopes removed.
func (i *Inbox) C() <-chan interface{} { return i.proc.c }

// Close deregisters the inbox. Messages sent to it later are dropped.
func (i *Inbox) Close() { i.sys.ProcessRegistry.Remove(i.pid) }

func (p *inboxProcess) SendUserMessage(_ *actor.PID, m interface{}) {
	select {
	case p.c <- actor.UnwrapEnvelopeMessage(m):
	default:
	}
}

func (p *inboxProcess) SendSystemMessage(*actor.PID, interface{}) {}

func (p *inboxProcess) Stop(*actor.PID) {}

// Pool is an actor dispatcher whose goroutines outlive a mailbox run. The library's default dispatcher
// starts a goroutine for every run of a mailbox; each starts with a small stack and grows it again, which
// cost 10-15% of the agent's CPU under load. A Pool's workers keep their grown stacks. Schedule never
// blocks: when every worker is busy and the queue is full, the run gets a goroutine of its own, as with
// the default dispatcher. Stop ends the workers once they have run what was queued; a Pool that is
// stopped runs each later run on a goroutine of its own.
type Pool struct {
	mu         sync.RWMutex
	stopped    bool
	runs       chan func()
	wg         sync.WaitGroup
	throughput int
}

// NewPool starts workers goroutines with a queue of queue runs; throughput is how many messages a
// mailbox handles before it yields its worker.
func NewPool(workers, queue, throughput int) *Pool {
	p := &Pool{runs: make(chan func(), queue), throughput: throughput}
	p.wg.Add(workers)
	for range workers {
		go func() {
			defer p.wg.Done()
			for f := range p.runs {
				f()
			}
		}()
	}
	return p
}

// Schedule implements actor.Dispatcher.
func (p *Pool) Schedule(f func()) {
	p.mu.RLock()
	if !p.stopped {
		select {
		case p.runs <- f:
			p.mu.RUnlock()
			return
		default:
		}
	}
	p.mu.RUnlock()
	go f()
}

// Throughput implements actor.Dispatcher.
func (p *Pool) Throughput() int { return p.throughput }

// Stop lets the workers finish what is queued and waits for them to exit.
func (p *Pool) Stop() {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		close(p.runs)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
