package session

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/internal/actorkit"
	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	waitLimit = 5 * time.Second
	sid       = 0x1234abcd
	epoch     = 7
)

// harness runs one session under a stand-in connection actor that hands everything the session sends it
// to toParent; the session's answers go to replies.
type harness struct {
	sys      *actor.ActorSystem
	toParent *actorkit.Inbox
	replies  *actorkit.Inbox
	session  *actor.PID
}

func start(t *testing.T, req *messages.Request, timeout time.Duration) *harness {
	t.Helper()
	return startUser(t, req, timeout, time.Minute)
}

// startUser is start with the user's answer timeout.
func startUser(t *testing.T, req *messages.Request, timeout, userTimeout time.Duration) *harness {
	t.Helper()
	sys := actorkit.NewSystem(zerolog.Nop())
	h := &harness{sys: sys, toParent: actorkit.NewInbox(sys, 16), replies: actorkit.NewInbox(sys, 16)}
	props := Props(Config{Start: &messages.StartSession{Req: req, ReplyTo: h.replies.PID(), Timeout: timeout},
		SessionID: sid, Epoch: epoch, Server: "127.0.0.1:49", UserTimeout: userTimeout,
		Metrics: metrics.Nop().Server("127.0.0.1:49"), Log: zerolog.Nop()})
	spawned := make(chan *actor.PID, 1)
	parent := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			spawned <- c.Spawn(props)
		case *messages.Outbound, *messages.SessionEnded:
			c.Send(h.toParent.PID(), m)
		}
	}))
	h.session = <-spawned
	t.Cleanup(func() {
		sys.Root.StopFuture(parent).Wait()
		h.toParent.Close()
		h.replies.Close()
		sys.Shutdown()
	})
	return h
}

func next[T any](t *testing.T, in *actorkit.Inbox) T {
	t.Helper()
	select {
	case m := <-in.C():
		v, ok := m.(T)
		if !ok {
			var zero T
			t.Fatalf("got %T, want %T", m, zero)
		}
		return v
	case <-time.After(waitLimit):
		var zero T
		t.Fatalf("no %T within %v", zero, waitLimit)
		return zero
	}
}

func papRequest() *messages.Request {
	return &messages.Request{ID: 1, Authen: &messages.AuthenRequest{Action: tacplus.ActionLogin, Type: tacplus.AuthenTypePAP,
		Service: tacplus.ServiceLogin, User: "alice", Password: []byte("pw")}}
}

// TestPass: the START goes to the parent with the connection epoch, the reply completes the session, the
// caller gets the Outcome and the connection a SessionEnded that is not Lost.
func TestPass(t *testing.T) {
	h := start(t, papRequest(), time.Minute)
	out := next[*messages.Outbound](t, h.toParent)
	if out.Epoch != epoch || out.Header.SessionID != sid || out.Header.SeqNo != 1 {
		t.Fatalf("outbound %+v", out)
	}
	reply := out.Header
	reply.SeqNo = 2
	h.sys.Root.Send(h.session, &messages.Inbound{Header: reply, Body: &tacplus.AuthenReply{Status: tacplus.AuthenStatusPass}})
	o := next[*messages.Outcome](t, h.replies)
	if o.Err != nil || o.SessionID != sid || o.Retryable || o.Authen == nil {
		t.Fatalf("outcome %+v", o)
	}
	if e := next[*messages.SessionEnded](t, h.toParent); e.Lost || e.SessionID != sid {
		t.Fatalf("ended %+v", e)
	}
}

// TestEndsWithTypedError: every way a session can end early answers the caller with the right class; a
// ConnectionLost of another connection epoch is ignored.
func TestEndsWithTypedError(t *testing.T) {
	for _, tc := range []struct {
		name      string
		timeout   time.Duration
		act       func(h *harness)
		class     error
		lost      bool
		retryable bool
		msg       string
	}{
		{name: "connection lost", act: func(h *harness) {
			h.sys.Root.Send(h.session, &messages.ConnectionLost{Epoch: epoch - 1}) // an older socket: ignored
			h.sys.Root.Send(h.session, &messages.ConnectionLost{Epoch: epoch, Err: errors.New("EOF")})
		}, class: tacplus.ErrConnectionLost, lost: true, retryable: true},
		{name: "stopped", act: func(h *harness) { h.sys.Root.Stop(h.session) },
			class: tacplus.ErrConnectionLost, retryable: true, msg: "stopped before it completed"},
		{name: "timeout", timeout: 20 * time.Millisecond, act: func(*harness) {},
			class: tacplus.ErrTimeout, retryable: true},
		{name: "abort", act: func(h *harness) { h.sys.Root.Send(h.session, &messages.Abort{ReqID: 1}) },
			class: tacplus.ErrAborted, retryable: true},
		{name: "bad secret", act: func(h *harness) {
			h.sys.Root.Send(h.session, &messages.Inbound{Header: tacplus.Header{Type: tacplus.TypeAuthen, SeqNo: 2, SessionID: sid},
				Err: &tacplus.DecodeError{Reason: tacplus.ReasonBadSecret}})
		}, class: tacplus.ErrBadSecret, retryable: true}, // no reply was accepted; the supervisor retries bad secrets anyway
	} {
		t.Run(tc.name, func(t *testing.T) {
			timeout := tc.timeout
			if timeout == 0 {
				timeout = time.Minute
			}
			h := start(t, papRequest(), timeout)
			next[*messages.Outbound](t, h.toParent)
			tc.act(h)
			o := next[*messages.Outcome](t, h.replies)
			if !errors.Is(o.Err, tc.class) || o.Retryable != tc.retryable || !o.SecretSent {
				t.Fatalf("outcome err=%v retryable=%v secretSent=%v, want %v retryable=%v", o.Err, o.Retryable, o.SecretSent, tc.class, tc.retryable)
			}
			var te *tacplus.Error
			if !errors.As(o.Err, &te) || te.Server == "" || te.SessionID != sid || te.State == "" {
				t.Errorf("error lacks context: %#v", o.Err)
			}
			if tc.msg != "" && !strings.Contains(o.Err.Error(), tc.msg) {
				t.Errorf("error %v", o.Err)
			}
			if e := next[*messages.SessionEnded](t, h.toParent); e.Lost != tc.lost {
				t.Errorf("SessionEnded.Lost = %v, want %v", e.Lost, tc.lost)
			}
			select {
			case m := <-h.replies.C():
				t.Errorf("second answer %T", m)
			default:
			}
		})
	}
}

// TestEndReports: what a session tells its connection and its caller about why it ended. A reply the
// session refuses as malformed for it (another minor version on a PASS) is a desync the connection must
// act on; a server timeout says TimedOut; the caller's own deadline says CallerDeadline and not TimedOut
// (the server is not to blame).
func TestEndReports(t *testing.T) {
	t.Run("refused reply", func(t *testing.T) {
		h := start(t, papRequest(), time.Minute)
		out := next[*messages.Outbound](t, h.toParent)
		r := out.Header
		r.SeqNo, r.Version = 2, r.Version^1
		h.sys.Root.Send(h.session, &messages.Inbound{Header: r, Body: &tacplus.AuthenReply{Status: tacplus.AuthenStatusPass}})
		if o := next[*messages.Outcome](t, h.replies); !errors.Is(o.Err, tacplus.ErrProtocol) {
			t.Fatalf("outcome %v", o.Err)
		}
		if e := next[*messages.SessionEnded](t, h.toParent); e.Desync != "version" {
			t.Fatalf("ended %+v, want Desync version", e)
		}
	})
	t.Run("server timeout", func(t *testing.T) {
		h := start(t, papRequest(), 20*time.Millisecond)
		next[*messages.Outbound](t, h.toParent)
		if o := next[*messages.Outcome](t, h.replies); !errors.Is(o.Err, tacplus.ErrTimeout) || o.CallerDeadline {
			t.Fatalf("outcome %v caller_deadline=%v", o.Err, o.CallerDeadline)
		}
		if e := next[*messages.SessionEnded](t, h.toParent); !e.TimedOut || e.Desync != "" {
			t.Fatalf("ended %+v", e)
		}
	})
	t.Run("caller deadline", func(t *testing.T) {
		req := papRequest()
		req.Deadline = time.Now().Add(20 * time.Millisecond)
		h := start(t, req, time.Minute)
		next[*messages.Outbound](t, h.toParent)
		if o := next[*messages.Outcome](t, h.replies); !errors.Is(o.Err, tacplus.ErrTimeout) || !o.CallerDeadline {
			t.Fatalf("outcome %v caller_deadline=%v", o.Err, o.CallerDeadline)
		}
		if e := next[*messages.SessionEnded](t, h.toParent); e.TimedOut {
			t.Fatalf("ended %+v: a caller's deadline is not the server's timeout", e)
		}
	})
	t.Run("user timeout", func(t *testing.T) {
		// The server prompted; the user never answered. The session aborts (CONTINUE with ABORT) and the
		// timeout is the caller's side: CallerDeadline, so the server is not dead-timed for a slow user.
		req := &messages.Request{ID: 1, Authen: &messages.AuthenRequest{Action: tacplus.ActionLogin, Type: tacplus.AuthenTypeASCII,
			Service: tacplus.ServiceLogin, User: "alice"}}
		h := startUser(t, req, time.Minute, 20*time.Millisecond)
		out := next[*messages.Outbound](t, h.toParent)
		r := out.Header
		r.SeqNo = 2
		h.sys.Root.Send(h.session, &messages.Inbound{Header: r, Body: &tacplus.AuthenReply{Status: tacplus.AuthenStatusGetPass, ServerMsg: "Password: "}})
		next[*messages.Prompt](t, h.replies)
		if ab := next[*messages.Outbound](t, h.toParent); ab.Header.SeqNo != 3 {
			t.Fatalf("outbound %+v, want the CONTINUE with ABORT", ab.Header)
		}
		if o := next[*messages.Outcome](t, h.replies); !errors.Is(o.Err, tacplus.ErrTimeout) || !o.CallerDeadline {
			t.Fatalf("outcome %v caller_deadline=%v, want a timeout of the caller's side", o.Err, o.CallerDeadline)
		}
		if e := next[*messages.SessionEnded](t, h.toParent); e.TimedOut {
			t.Fatalf("ended %+v: the user's timeout is not the server's", e)
		}
	})
}

// TestUserInputWiped: the session owns the UserInput it gets: once the CONTINUE carrying the answer is
// built (it holds its own copy, and it goes out intact), the answer's buffer is zeroed.
func TestUserInputWiped(t *testing.T) {
	req := &messages.Request{ID: 1, Authen: &messages.AuthenRequest{Action: tacplus.ActionLogin, Type: tacplus.AuthenTypeASCII,
		Service: tacplus.ServiceLogin, User: "alice"}}
	h := start(t, req, time.Minute)
	out := next[*messages.Outbound](t, h.toParent)
	r := out.Header
	r.SeqNo = 2
	h.sys.Root.Send(h.session, &messages.Inbound{Header: r, Body: &tacplus.AuthenReply{Status: tacplus.AuthenStatusGetPass, Flags: tacplus.FlagNoEcho}})
	next[*messages.Prompt](t, h.replies)
	answer := []byte("hunter2-secret")
	h.sys.Root.Send(h.session, &messages.UserInput{Text: answer})
	cont := next[*messages.Outbound](t, h.toParent)
	if c, ok := cont.Body.(*tacplus.AuthenContinue); !ok || c.UserMsg != "hunter2-secret" {
		t.Fatalf("CONTINUE %+v, want the answer in user_msg", cont.Body)
	}
	// The Outbound is sent during Step and the wipe follows in the same Receive: the Outcome of the next
	// message the session handles (the server's PASS) comes after it.
	r.SeqNo = 4
	h.sys.Root.Send(h.session, &messages.Inbound{Header: r, Body: &tacplus.AuthenReply{Status: tacplus.AuthenStatusPass}})
	if o := next[*messages.Outcome](t, h.replies); o.Err != nil {
		t.Fatalf("outcome %v", o.Err)
	}
	if !bytes.Equal(answer, make([]byte, len(answer))) {
		t.Fatalf("the answer's buffer still holds %q after the CONTINUE was built", answer)
	}
}
