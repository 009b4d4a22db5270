package connection

import (
	"errors"
	"testing"
	"time"

	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/internal/testkit"
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
				h.sys.Root.Send(m.Session, &messages.UserInput{ReqID: m.ReqID, Text: []byte("alice-pw")})
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
	testkit.EventuallyEvery(t, waitLimit, 5*time.Millisecond, what, cond)
}

// TestCrossSessionServer is the headline regression against the test server's real misrouting: on a
// multiplexed connection, the server answers alice's wrong password (FAIL) under the session_id of
// another live session, bob's, whose right password the server answers later, under his own id. No
// login may report PASS; the connection is torn down with ErrProtocol and the supervisor told. Repeated,
// since which of bob's sessions is live when alice's FAIL goes out depends on the server's timing (when
// none is, the FAIL goes under nobody's id: also a desync).
func TestCrossSessionServer(t *testing.T) {
	srv, err := tacplustest.Start(tacplustest.Config{Key: key, SingleConnect: true,
		Faults: tacplustest.Faults{User: "alice", CrossSession: tacplustest.Always},
		Users: map[string]tacplustest.User{"alice": {Password: "alice-pw"},
			"bob": {Password: "bob-pw", Delay: 20 * time.Millisecond}}}) // bob's session stays live a while
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	for round := range 10 {
		h := start(t, srv.Addr(), func(c *Config) { c.NegotiationWait = -1 })
		h.loginAs("bob", "bob-pw", time.Time{}) // negotiates single-connect
		if o := h.outcome(); o.Err != nil {
			t.Fatalf("round %d: warm-up: %v", round, o.Err)
		}
		users := map[uint64]string{}
		users[h.loginAs("bob", "bob-pw", time.Time{})] = "bob"
		users[h.loginAs("alice", "wrong", time.Time{})] = "alice"
		os := h.outcomes(2)
		for id, o := range os {
			if users[id] == "alice" && o.Err == nil {
				t.Fatalf("round %d: alice's wrong password reported PASS", round)
			}
			// Bob may get his own PASS (when the load delayed alice until his reply was out), alice's FAIL
			// (fail closed), or ErrProtocol; never anything else.
			if o.Err != nil && !errors.Is(o.Err, tacplus.ErrProtocol) && !errors.Is(o.Err, tacplus.ErrAuthenticationFailed) {
				t.Errorf("round %d: %s: %v, want ErrProtocol (or bob's FAIL taken from alice)", round, users[id], o.Err)
			}
		}
		event[*messages.Desync](t, h)
		h.protocolFailure()
	}
	if n := srv.Stats().Faults.CrossSession; n == 0 {
		t.Fatal("the server never misrouted")
	}
}

// TestProbeSession: the liveness probe the supervisor can run (issue 12 point 5) is an ASCII START
// without a user: a real TACACS+ server answers GETUSER (the proof of life), the probe aborts (CONTINUE
// with ABORT, section 5.4.3), the server ends the session quietly, and the connection stays healthy.
func TestProbeSession(t *testing.T) {
	srv := testServer(t, tacplustest.Faults{})
	h := start(t, srv.Addr(), nil)
	id := reqIDs.Add(1)
	h.sys.Root.Send(h.conn, &messages.StartSession{ReplyTo: h.replies.PID(), Timeout: waitLimit,
		Req: &messages.Request{ID: id, Authen: &messages.AuthenRequest{}}})
	p := next[*messages.Prompt](t, h.replies)
	if p.Status != tacplus.AuthenStatusGetUser {
		t.Fatalf("prompt %v, want GETUSER", p.Status)
	}
	h.sys.Root.Send(h.conn, &messages.Abort{ReqID: id, Reason: "probe"})
	if o := h.outcome(); !errors.Is(o.Err, tacplus.ErrAborted) || o.Retryable {
		t.Fatalf("outcome %v retryable=%v, want aborted after a reply", o.Err, o.Retryable)
	}
	waitFor(t, "the server to see the ABORT", func() bool { return srv.Stats().Aborts == 1 })
	h.loginAs("alice", "alice-pw", time.Time{}) // the connection is still good
	if o := h.outcome(); o.Err != nil {
		t.Fatal(o.Err)
	}
	h.noFailure()
}

// TestCallerDeadlineAtPrompt: the caller's deadline passes while a prompt waits for its answer. The
// session ends (CallerDeadline) and still tells the server with a CONTINUE+ABORT, which the connection
// writes although the deadline has passed (it carries nothing of the request).
func TestCallerDeadlineAtPrompt(t *testing.T) {
	srv := testServer(t, tacplustest.Faults{})
	h := start(t, srv.Addr(), nil)
	h.sys.Root.Send(h.conn, &messages.StartSession{ReplyTo: h.replies.PID(), Timeout: waitLimit,
		Req: &messages.Request{ID: reqIDs.Add(1), Deadline: time.Now().Add(time.Second), // generous: the prompt must come first
			Authen: &messages.AuthenRequest{}}})
	if p := next[*messages.Prompt](t, h.replies); p.Status != tacplus.AuthenStatusGetUser {
		t.Fatalf("prompt %v", p.Status)
	}
	// Nobody answers.
	if o := h.outcome(); !errors.Is(o.Err, tacplus.ErrTimeout) || !o.CallerDeadline {
		t.Fatalf("outcome %v caller_deadline=%v", o.Err, o.CallerDeadline)
	}
	waitFor(t, "the server to see the ABORT", func() bool { return srv.Stats().Aborts == 1 })
	h.noFailure()
}
