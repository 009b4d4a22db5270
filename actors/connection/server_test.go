package connection

import (
	"errors"
	"testing"
	"time"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

func testServer(t *testing.T, f tacplustest.Faults) *tacplustest.Server {
	t.Helper()
	srv, err := tacplustest.Start(tacplustest.Config{Key: key, SingleConnect: true, Faults: f,
		Users: map[string]tacplustest.User{"alice": {Password: "alice-pw"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestCloseAfterEachReply: a server that agrees to single-connect yet closes after every reply is not
// failing (issue 12 point 8): each next request opens a new connection and succeeds, and the actor never
// fails (which would dead-time the server).
func TestCloseAfterEachReply(t *testing.T) {
	srv := testServer(t, tacplustest.Faults{CloseAfterReply: tacplustest.Always})
	h := start(t, srv.Addr(), nil)
	for i := range 5 {
		h.loginAs("alice", "alice-pw", time.Time{})
		if o := h.outcome(); o.Err != nil {
			t.Fatalf("login %d: %v", i, o.Err)
		}
		event[*messages.ConnectionIdle](t, h) // the close is seen before the next request goes
		h.noFailure()
	}
	if n := srv.Stats().Faults.CloseAfterReply; n != 5 {
		t.Errorf("the server closed %d times, want 5", n)
	}
}

// TestPromptForever: a server that answers every CONTINUE with another GETDATA gets max_prompts answers,
// then an ABORT; the caller gets fsm.ErrTooManyPrompts, and the connection (which did nothing wrong at
// the framing level) is not torn down (issue 12 point 6).
func TestPromptForever(t *testing.T) {
	srv := testServer(t, tacplustest.Faults{PromptForever: true})
	h := start(t, srv.Addr(), nil)
	h.sys.Root.Send(h.conn, &messages.StartSession{ReplyTo: h.replies.PID(), Timeout: waitLimit,
		Req: &messages.Request{ID: reqIDs.Add(1), Authen: &messages.AuthenRequest{User: "alice"}}})
	prompts := 0
	for {
		select {
		case m := <-h.replies.C():
			switch m := m.(type) {
			case *messages.Prompt:
				prompts++
				h.sys.Root.Send(m.Session, &messages.UserInput{Text: "alice-pw"})
				continue
			case *messages.Outcome:
				if !errors.Is(m.Err, fsm.ErrTooManyPrompts) || !errors.Is(m.Err, tacplus.ErrProtocol) {
					t.Fatalf("outcome %v, want ErrTooManyPrompts", m.Err)
				}
				if prompts != fsm.DefaultMaxPrompts {
					t.Errorf("%d prompts reached the caller, want %d", prompts, fsm.DefaultMaxPrompts)
				}
				waitFor(t, "the server to see the ABORT", func() bool { return srv.Stats().Aborts == 1 })
				h.noFailure()
				select {
				case e := <-h.events.C():
					if _, bad := e.(*messages.Desync); bad {
						t.Fatalf("desync %+v after a well-formed conversation", e)
					}
				default:
				}
				return
			}
		case <-time.After(waitLimit):
			t.Fatalf("no outcome after %d prompts", prompts)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
