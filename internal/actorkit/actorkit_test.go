package actorkit

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitLimit = 5 * time.Second

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, waitLimit, what, cond)
}

type syncBuf = testkit.SyncBuffer

type expected struct{}

// cmd and echo are the test actors' messages.
type (
	cmd  struct{ name string }
	echo struct{ text string }
)

func (expected) ExpectedFailure() {}

// TestPanicLogger: a panic is logged with its stack and counted, then still reaches supervision (the
// actor is restarted and keeps working); an Expected failure is neither logged nor counted.
func TestPanicLogger(t *testing.T) {
	var buf syncBuf
	log := zerolog.New(&buf)
	sys := NewSystem(log)
	defer sys.Shutdown()
	var panics, restarts, handled atomic.Int64
	props := actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Restarting:
			restarts.Add(1)
		case *cmd:
			switch m.name {
			case "boom":
				panic("boom")
			case "expected":
				panic(expected{})
			}
			handled.Add(1)
		}
	}, actor.WithReceiverMiddleware(PanicLogger(log, func() { panics.Add(1) })))
	pid := sys.Root.Spawn(props)
	defer func() { sys.Root.StopFuture(pid).Wait() }()

	sys.Root.Send(pid, &cmd{"boom"})
	sys.Root.Send(pid, &cmd{"ok"})
	eventually(t, "actor restarted and still serving", func() bool { return restarts.Load() == 1 && handled.Load() == 1 })
	out := buf.String()
	if panics.Load() != 1 || !strings.Contains(out, "actor panic: boom") || !strings.Contains(out, `"stack"`) {
		t.Errorf("panics=%d log=%q", panics.Load(), out)
	}
	sys.Root.Send(pid, &cmd{"expected"})
	sys.Root.Send(pid, &cmd{"ok"})
	eventually(t, "restarted after the expected failure", func() bool { return restarts.Load() == 2 && handled.Load() == 2 })
	if panics.Load() != 1 || strings.Count(buf.String(), "actor panic") != 1 {
		t.Errorf("an expected failure was logged or counted: panics=%d", panics.Load())
	}
}

// TestInbox: messages arrive in order with envelopes removed; a full inbox drops instead of blocking the
// sender; a closed inbox swallows late messages.
func TestInbox(t *testing.T) {
	sys := NewSystem(zerolog.Nop())
	defer sys.Shutdown()
	in := NewInbox(sys, 2)
	echoer := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if e, ok := c.Message().(*echo); ok {
			c.Respond(&echo{"re:" + e.text})
		}
	}))
	defer func() { sys.Root.StopFuture(echoer).Wait() }()
	sys.Root.RequestWithCustomSender(echoer, &echo{"a"}, in.PID())
	sys.Root.RequestWithCustomSender(echoer, &echo{"b"}, in.PID())
	for _, want := range []string{"re:a", "re:b"} {
		select {
		case got := <-in.C():
			if e, ok := got.(*echo); !ok || e.text != want {
				t.Fatalf("got %v, want %s", got, want)
			}
		case <-time.After(waitLimit):
			t.Fatalf("no %s", want)
		}
	}
	for i := range 5 { // two fit, three are dropped; none blocks
		sys.Root.Send(in.PID(), i)
	}
	if len(in.C()) != 2 {
		t.Errorf("inbox holds %d, want 2", len(in.C()))
	}
	in.Close()
	sys.Root.Send(in.PID(), "late")
}

// TestSubscribe: dead letters reach the hook until it is detached.
func TestSubscribe(t *testing.T) {
	sys := NewSystem(zerolog.Nop())
	defer sys.Shutdown()
	var dead atomic.Int64
	unsubscribe := Subscribe(sys, Hooks{DeadLetter: func(*actor.DeadLetterEvent) { dead.Add(1) }})
	gone := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	sys.Root.StopFuture(gone).Wait()
	sys.Root.Send(gone, &echo{"x"})
	eventually(t, "dead letter counted", func() bool { return dead.Load() == 1 })
	unsubscribe()
	sys.Root.Send(gone, &echo{"y"})
	if dead.Load() != 1 {
		t.Errorf("hook called after unsubscribe")
	}
}

// TestTimer: a timer delivers once; a cancelled one does not.
func TestTimer(t *testing.T) {
	sys := NewSystem(zerolog.Nop())
	defer sys.Shutdown()
	in := NewInbox(sys, 4)
	defer in.Close()
	tm := NewTimer(sys.Root)
	cancel := tm.After(time.Hour, in.PID(), "never")
	cancel()
	tm.After(time.Millisecond, in.PID(), "fired")
	select {
	case got := <-in.C():
		if got != "fired" {
			t.Fatalf("got %v", got)
		}
	case <-time.After(waitLimit):
		t.Fatal("timer did not fire")
	}
}
