package supervisor

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/actors/connection"
	"github.com/tacagent/tacagent/actors/session"
	"github.com/tacagent/tacagent/internal/actorkit"
	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/tacplus"
)

const waitLimit = 10 * time.Second

func recv[T any](t *testing.T, in *actorkit.Inbox) T {
	t.Helper()
	select {
	case m := <-in.C():
		v, ok := m.(T)
		if !ok {
			var zero T
			t.Fatalf("got %T %+v, want %T", m, m, zero)
		}
		return v
	case <-time.After(waitLimit):
		var zero T
		t.Fatalf("no %T within %v", zero, waitLimit)
		return zero
	}
}

// TestDrainingRefusalSentinel (issue 13 follow-up): a request that reaches a supervisor after its drain
// began is answered ErrAborted with the ErrDraining cause, which a caller tests with errors.Is (the daemon
// resends such a request to its new runtime), and nothing of it is sent. A request refused for another
// reason (an unknown group) does not carry it.
func TestDrainingRefusalSentinel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	codec, err := tacplus.NewCodec(tacplus.Options{Key: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Servers: []Server{{Addr: ln.Addr().String(), Codec: codec}}, Log: zerolog.Nop(),
		NewSession: func(*messages.StartSession, connection.SessionInfo) *session.Session {
			t.Error("a session was started")
			return nil
		}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sys := actorkit.NewSystem(zerolog.Nop())
	in := actorkit.NewInbox(sys, 8)
	sup := sys.Root.Spawn(Props(cfg))
	defer func() {
		sys.Root.StopFuture(sup).Wait()
		in.Close()
		sys.Shutdown()
	}()

	sys.Root.RequestWithCustomSender(sup, &messages.Request{ID: 1, Group: "nope", Authen: &messages.AuthenRequest{}}, in.PID())
	if o := recv[*messages.Outcome](t, in); !errors.Is(o.Err, tacplus.ErrConfig) || errors.Is(o.Err, ErrDraining) {
		t.Fatalf("unknown group: %v, want ErrConfig without ErrDraining", o.Err)
	}
	sys.Root.RequestWithCustomSender(sup, &messages.Drain{Deadline: time.Now().Add(waitLimit)}, in.PID())
	recv[*messages.Drained](t, in)
	sys.Root.RequestWithCustomSender(sup, &messages.Request{ID: 2, Authen: &messages.AuthenRequest{}}, in.PID())
	o := recv[*messages.Outcome](t, in)
	if !errors.Is(o.Err, ErrDraining) || !errors.Is(o.Err, tacplus.ErrAborted) || o.ReqID != 2 {
		t.Fatalf("after drain: %+v (%v), want ErrAborted with the ErrDraining cause", o, o.Err)
	}
}
