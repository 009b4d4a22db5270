package connection

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/tacagent/tacagent/actors/session"
	"github.com/tacagent/tacagent/internal/actorkit"
	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/metrics"
	"github.com/tacagent/tacagent/tacplus"
	"github.com/tacagent/tacagent/tacplus/tacplustest"
)

// childrenProbe asks the connection actor for its ctx.Children(); the probe middleware answers it on the
// actor's own goroutine, so the connection's code never sees it.
type childrenProbe struct{ out chan []*actor.PID }

func probeMiddleware(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		if p, ok := env.Message.(*childrenProbe); ok {
			p.out <- slices.Clone(c.(actor.Context).Children())
			return
		}
		next(c, env)
	}
}

// startProbed is startStand with the probe middleware on the connection actor.
func startProbed(t *testing.T, addr string, mod func(*Config)) *harness {
	t.Helper()
	sys := actorkit.NewSystem(zerolog.Nop())
	// replies holds the outcomes of more than maxFree sessions at once (TestFreeSessionActorsBounded).
	h := &harness{t: t, sys: sys, events: actorkit.NewInbox(sys, 16), replies: actorkit.NewInbox(sys, 2*maxFree), failures: make(chan *Failure, 4)}
	codec, err := tacplus.NewCodec(tacplus.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	var epochs atomic.Uint64
	h.metrics = metrics.Nop()
	m := h.metrics.Server(addr)
	cfg := Config{Addr: addr, Codec: codec, SingleConnect: true, Epochs: &epochs, Metrics: m, Log: zerolog.Nop(), DialTimeout: time.Second,
		NewSession: func(st *messages.StartSession, info SessionInfo) *session.Session {
			return session.New(session.Config{Start: st, SessionID: info.SessionID, Epoch: info.Epoch, Server: info.Server,
				UserTimeout: time.Minute, Metrics: m, Log: zerolog.Nop()})
		}}
	if mod != nil {
		mod(&cfg)
	}
	s := &stand{props: Props(cfg, actor.WithReceiverMiddleware(probeMiddleware)), h: h, ready: make(chan *actor.PID, 1)}
	parent := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return s }))
	h.conn = <-s.ready
	t.Cleanup(func() {
		sys.Root.StopFuture(parent).Wait()
		h.events.Close()
		h.replies.Close()
		sys.Shutdown()
	})
	return h
}

// children returns the connection actor's children, each checked to be a live actor of the system.
func (h *harness) children() []*actor.PID {
	h.t.Helper()
	p := &childrenProbe{out: make(chan []*actor.PID, 1)}
	h.sys.Root.Send(h.conn, p)
	select {
	case pids := <-p.out:
		for _, pid := range pids {
			if !strings.HasPrefix(pid.Id, h.conn.Id+"/") {
				h.t.Fatalf("child %s is not under the connection %s", pid.Id, h.conn.Id)
			}
			if proc, ok := h.sys.ProcessRegistry.GetLocal(pid.Id); !ok {
				h.t.Fatalf("child %s is not a registered actor", pid.Id)
			} else if _, ok := proc.(*actor.ActorProcess); !ok {
				h.t.Fatalf("child %s is a %T, not an actor", pid.Id, proc)
			}
		}
		return pids
	case <-time.After(waitLimit):
		h.t.Fatal("the connection actor did not answer the probe")
		return nil
	}
}

// reply answers h (a packet the client sent) with an authentication REPLY of status st.
func (c *peerConn) reply(h tacplus.Header, st tacplus.AuthenStatus, flags tacplus.HeaderFlag) {
	c.t.Helper()
	h.SeqNo++
	h.Flags = flags
	b, err := c.codec.Marshal(h, &tacplus.AuthenReply{Status: st, ServerMsg: "Password: "})
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// readContinue reads the client's next packet, which must be an authentication CONTINUE, and returns its
// header and user message.
func (c *peerConn) readContinue() (tacplus.Header, string) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(waitLimit))
	h, body, err := c.rd.Next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var cont tacplus.AuthenContinue
	if err := c.codec.DecodeBody(h, body, &cont); err != nil {
		c.t.Fatalf("not a CONTINUE (seq %d): %v", h.SeqNo, err)
	}
	return h, cont.UserMsg
}

// TestSessionsAreChildActors: every session in flight is a protoactor actor, a child of its connection
// actor (in the connection's ctx.Children() and in the system's process registry), and the session actor
// answers the caller's prompts itself (Prompt.Session). A session actor is reused for the next login on
// the connection, and an answer sent to it for an earlier login is dropped and wiped, never used.
func TestSessionsAreChildActors(t *testing.T) {
	p := newPeer(t, key)
	h := startProbed(t, p.ln.Addr().String(), nil)
	if n := len(h.children()); n != 0 {
		t.Fatalf("%d children before any session", n)
	}
	var conn *peerConn
	var first *actor.PID
	var firstReq uint64
	for i := range 3 {
		req := reqIDs.Add(1)
		h.sys.Root.Send(h.conn, &messages.StartSession{ReplyTo: h.replies.PID(), Timeout: waitLimit,
			Req: &messages.Request{ID: req, Authen: &messages.AuthenRequest{Action: tacplus.ActionLogin,
				Type: tacplus.AuthenTypeASCII, Service: tacplus.ServiceLogin, User: "alice"}}})
		if conn == nil {
			conn = p.accept()
		}
		start := conn.read()
		conn.reply(start, tacplus.AuthenStatusGetPass, tacplus.FlagSingleConnect)
		pr := next[*messages.Prompt](t, h.replies)
		kids := h.children()
		if len(kids) != 1 || !kids[0].Equal(pr.Session) {
			t.Fatalf("login %d: children %v, the prompt's session actor %v", i, kids, pr.Session)
		}
		if i == 0 {
			first, firstReq = pr.Session, req
		} else {
			if !pr.Session.Equal(first) {
				t.Fatalf("login %d ran on session actor %v, not the reused %v", i, pr.Session, first)
			}
			// An answer for the first login, sent to the same (reused) actor, is not this login's.
			stale := []byte("stale-answer")
			h.sys.Root.Send(pr.Session, &messages.UserInput{ReqID: firstReq, Text: stale})
			defer func() {
				if string(stale) != string(make([]byte, len(stale))) {
					t.Errorf("a stale answer was not wiped: %q", stale)
				}
			}()
		}
		h.sys.Root.Send(pr.Session, &messages.UserInput{ReqID: req, Text: []byte("pw-" + string(rune('a'+i)))})
		cont, msg := conn.readContinue()
		if want := "pw-" + string(rune('a'+i)); msg != want {
			t.Fatalf("login %d: the server got answer %q, want %q", i, msg, want)
		}
		conn.reply(cont, tacplus.AuthenStatusPass, 0)
		if o := h.outcome(); o.Err != nil || o.ReqID != req {
			t.Fatalf("login %d: outcome %+v", i, o)
		}
	}
	// Two sessions at once: two session actors, the idle one reused for one of them.
	h.login()
	h.login()
	a, b := conn.read(), conn.read()
	kids := h.children()
	if len(kids) != 2 || !slices.ContainsFunc(kids, first.Equal) {
		t.Fatalf("children %v with two sessions in flight, want 2 including %v", kids, first)
	}
	conn.pass(a, 0)
	conn.pass(b, 0)
	for range 2 {
		if o := h.outcome(); o.Err != nil {
			t.Fatalf("outcome %v", o.Err)
		}
	}
	if n := len(h.children()); n != 2 {
		t.Fatalf("%d children after the sessions ended, want the 2 kept for reuse", n)
	}
	h.noFailure()
}

// TestSessionPanicStopsItsActor: a session that panics (here: no metrics, so its first step dereferences
// nil, and so does its stop) answers its caller with ErrConnectionLost; its actor is stopped and never
// reused; the connection and its other sessions go on.
func TestSessionPanicStopsItsActor(t *testing.T) {
	srv := testServer(t, tacplustest.Faults{})
	var panics atomic.Int32
	h := startProbed(t, srv.Addr(), func(c *Config) {
		ns := c.NewSession
		c.OnPanic = func() { panics.Add(1) }
		c.NewSession = func(st *messages.StartSession, info SessionInfo) *session.Session {
			if st.Req.Authen != nil && st.Req.Authen.User == "boom" {
				return session.New(session.Config{Start: st, SessionID: info.SessionID, Epoch: info.Epoch,
					Server: info.Server, Log: zerolog.Nop()})
			}
			return ns(st, info)
		}
	})
	h.loginAs("alice", "alice-pw", time.Time{})
	if o := h.outcome(); o.Err != nil {
		t.Fatalf("first login: %v", o.Err)
	}
	kids := h.children()
	if len(kids) != 1 {
		t.Fatalf("children %v", kids)
	}
	used := kids[0]
	h.loginAs("boom", "x", time.Time{})
	o := h.outcome()
	if !errors.Is(o.Err, tacplus.ErrConnectionLost) || o.Kind != messages.KindAuthen {
		t.Fatalf("the panicking session answered %+v, want ErrConnectionLost", o)
	}
	if n := panics.Load(); n < 1 {
		t.Fatal("OnPanic was not called")
	}
	// The panicked actor (the reused one) is stopped before its caller is answered; the next login gets a
	// new one.
	if kids := h.children(); len(kids) != 0 {
		t.Fatalf("children after the panic %v, want none (the panicked %v stopped)", kids, used)
	}
	h.loginAs("alice", "alice-pw", time.Time{})
	if o := h.outcome(); o.Err != nil {
		t.Fatalf("login after the panic: %v", o.Err)
	}
	if kids := h.children(); len(kids) != 1 || kids[0].Equal(used) {
		t.Fatalf("children after the panic %v (the panicked one was %v)", kids, used)
	}
	h.noFailure()
}

// TestFreeSessionActorsBounded: a connection keeps at most maxFree idle session actors; the others are
// stopped when their sessions end.
func TestFreeSessionActorsBounded(t *testing.T) {
	p := newPeer(t, key)
	h := startProbed(t, p.ln.Addr().String(), nil)
	h.login()
	conn := p.accept()
	conn.pass(conn.read(), tacplus.FlagSingleConnect)
	if o := h.outcome(); o.Err != nil {
		t.Fatal(o.Err)
	}
	const n = maxFree + 8
	for range n {
		h.login()
	}
	pkts := make([]tacplus.Header, 0, n)
	for range n {
		pkts = append(pkts, conn.read())
	}
	if kids := h.children(); len(kids) != n {
		t.Fatalf("%d children with %d sessions in flight", len(kids), n)
	}
	for _, pk := range pkts {
		conn.pass(pk, 0)
	}
	for range n {
		if o := h.outcome(); o.Err != nil {
			t.Fatal(o.Err)
		}
	}
	if kids := h.children(); len(kids) != maxFree {
		t.Fatalf("%d children after %d sessions ended, want %d kept", len(kids), n, maxFree)
	}
	h.noFailure()
}
