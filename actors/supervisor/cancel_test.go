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
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
)

// TestCancelledThenLostIsAborted: a request whose caller cancelled, and whose session then fails in a way
// that would have been retried (its connection was lost before any reply), is not retried and ends as
// the caller asked: aborted, with the connection loss as the cause. (Chaos TestCallersGiveUp saw such a
// request reported as connection_lost.)
func TestCancelledThenLostIsAborted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // hold the connections open, read nothing
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	codec, err := tacplus.NewCodec(tacplus.Options{Key: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 4)
	sys := actorkit.NewSystem(zerolog.Nop())
	in := actorkit.NewInbox(sys, 8)
	void := actorkit.NewInbox(sys, 64)
	defer void.Close()
	cfg := Config{Servers: []Server{{Addr: ln.Addr().String(), Codec: codec}}, Log: zerolog.Nop(),
		NewSession: func(st *messages.StartSession, info connection.SessionInfo) *session.Session {
			started <- struct{}{}
			// A session whose answers reach nobody: for the supervisor, one that never answers.
			silent := &messages.StartSession{Req: st.Req, ReplyTo: void.PID(), Caller: st.Caller, Timeout: st.Timeout, Attempt: st.Attempt}
			return session.New(session.Config{Start: silent, SessionID: info.SessionID, Epoch: info.Epoch,
				Server: info.Server, UserTimeout: time.Minute, Metrics: metrics.Nop().Server(info.Server), Log: zerolog.Nop()})
		}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sup := sys.Root.Spawn(Props(cfg))
	defer func() {
		sys.Root.StopFuture(sup).Wait()
		in.Close()
		sys.Shutdown()
	}()
	sys.Root.RequestWithCustomSender(sup, &messages.Request{ID: 1, Author: &messages.AuthorRequest{User: "alice"}}, in.PID())
	select {
	case <-started:
	case <-time.After(waitLimit):
		t.Fatal("no session was started")
	}
	sys.Root.Send(sup, &messages.Cancel{ID: 1, Reason: "cancelled by caller"})
	lost := &tacplus.Error{Class: tacplus.ErrConnectionLost, Server: ln.Addr().String(), Msg: "read: connection reset by peer"}
	sys.Root.Send(sup, &messages.Outcome{ReqID: 1, Kind: messages.KindAuthor, Server: ln.Addr().String(), Retryable: true, Err: lost})
	o := recv[*messages.Outcome](t, in)
	if tacplus.ClassName(o.Err) != "aborted" || !errors.Is(o.Err, tacplus.ErrConnectionLost) || o.Retryable {
		t.Fatalf("outcome %v (class %s, retryable %v), want aborted with the connection loss as its cause", o.Err,
			tacplus.ClassName(o.Err), o.Retryable)
	}
	select {
	case <-started:
		t.Fatal("the cancelled request was retried")
	default:
	}
}
