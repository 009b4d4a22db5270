package supervisor

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tacagent/tacagent/actors/connection"
	"github.com/tacagent/tacagent/actors/session"
	"github.com/tacagent/tacagent/fsm"
	"github.com/tacagent/tacagent/messages"
	"github.com/tacagent/tacagent/serverfsm"
	"github.com/tacagent/tacagent/tacplus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestBackoff: doubling from the initial delay, capped, never zero or negative (even for huge counts).
func TestBackoff(t *testing.T) {
	const ini, max = 50 * time.Millisecond, 5 * time.Second
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{
		{0, ini}, {1, ini}, {2, 2 * ini}, {3, 4 * ini}, {7, 64 * ini}, {8, max}, {40, max}, {1 << 30, max},
	} {
		if got := Backoff(tc.n, ini, max); got != tc.want {
			t.Errorf("Backoff(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

// TestClassify: the retry rules (the method-list rule of network gear): FAIL stops; no response, ERROR,
// unreachable and a bad key move on; a lost connection moves on only when no reply was seen. Dead-time
// (issue 12 point 4): the server's own failures only, a protocol error in what it sent included; never
// the caller's deadline.
func TestClassify(t *testing.T) {
	a := New(Config{})
	te := func(class error) error { return &tacplus.Error{Class: class} }
	badPacket := &tacplus.Error{Class: tacplus.ErrProtocol, Err: &tacplus.DecodeError{Reason: tacplus.ReasonSeq}}
	tooMany := &tacplus.Error{Class: tacplus.ErrProtocol, Err: fsm.ErrTooManyPrompts}
	lostDesync := &tacplus.Error{Class: tacplus.ErrConnectionLost, Err: badPacket}
	for _, tc := range []struct {
		name            string
		err             error
		retryable       bool
		retry, markDead bool
	}{
		{"authentication FAIL", te(tacplus.ErrAuthenticationFailed), true, false, false},
		{"authorization FAIL", te(tacplus.ErrDenied), true, false, false},
		{"aborted", te(tacplus.ErrAborted), true, false, false},
		{"config", te(tacplus.ErrConfig), true, false, false},
		{"ERROR", te(tacplus.ErrServerError), false, true, false},
		{"unreachable", te(tacplus.ErrUnreachable), true, true, true},
		{"timeout before any reply", te(tacplus.ErrTimeout), true, true, true},
		{"timeout after a reply", te(tacplus.ErrTimeout), false, false, true},
		{"bad secret", te(tacplus.ErrBadSecret), false, true, true},
		{"connection lost before any reply", te(tacplus.ErrConnectionLost), true, true, false},
		{"connection lost after a reply", te(tacplus.ErrConnectionLost), false, false, false},
		{"protocol error of ours", te(tacplus.ErrProtocol), true, false, false},
		{"protocol error: the server's bad packet", badPacket, false, false, true},
		{"protocol error: too many prompts", tooMany, false, false, true},
		{"connection lost to a desync", lostDesync, true, true, true},
		{"unclassified", errors.New("strange"), true, false, false},
	} {
		retry, dead := a.classify(&messages.Outcome{Err: tc.err, Retryable: tc.retryable})
		if retry != tc.retry || dead != tc.markDead {
			t.Errorf("%s: retry=%v markDead=%v, want %v %v", tc.name, retry, dead, tc.retry, tc.markDead)
		}
		// The caller's deadline (or its user's answer) never dead-times the server, nor is it retried.
		if retry, dead := a.classify(&messages.Outcome{Err: tc.err, Retryable: tc.retryable, CallerDeadline: true}); dead || (retry && errors.Is(tc.err, tacplus.ErrTimeout)) {
			t.Errorf("%s with CallerDeadline: retry=%v markDead=%v", tc.name, retry, dead)
		}
	}
}

// TestValidate: configuration errors are ErrConfig; defaults are filled in.
func TestValidate(t *testing.T) {
	codec, err := tacplus.NewCodec(tacplus.Options{Key: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	ns := func(*messages.StartSession, connection.SessionInfo) *session.Session { return nil }
	srv := func(addr string) Server { return Server{Addr: addr, Codec: codec} }
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"no servers", Config{NewSession: ns}, false},
		{"no codec", Config{Servers: []Server{{Addr: "127.0.0.1:49"}}, NewSession: ns}, false},
		{"duplicate", Config{Servers: []Server{srv("127.0.0.1:49"), srv("127.0.0.1:49")}, NewSession: ns}, false},
		{"empty group", Config{Servers: []Server{srv("127.0.0.1:49")}, Groups: []Group{{Name: "g"}}, NewSession: ns}, false},
		{"unknown server in group", Config{Servers: []Server{srv("127.0.0.1:49")}, Groups: []Group{{Name: "g", Servers: []string{"127.0.0.1:50"}}}, NewSession: ns}, false},
		{"no session factory", Config{Servers: []Server{srv("127.0.0.1:49")}}, false},
		{"minimal", Config{Servers: []Server{srv("127.0.0.1:49"), srv("[::1]:49")}, NewSession: ns}, true},
	} {
		err := tc.cfg.Validate()
		if tc.ok != (err == nil) {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if err != nil && !errors.Is(err, tacplus.ErrConfig) {
			t.Errorf("%s: %v is not ErrConfig", tc.name, err)
		}
		if tc.ok {
			c := tc.cfg
			if c.DeadTime != DefaultDeadTime || c.Servers[0].Timeout != DefaultTimeout || len(c.Groups) != 1 || len(c.Groups[0].Servers) != 2 {
				t.Errorf("defaults not applied: %+v", c)
			}
		}
	}
}

// TestPick: the first alive untried server of the group; with none alive, the dead ones in order (never
// failing untried), except one dead for a key mismatch; with an alive one already tried, no dead one.
func TestPick(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	mk := func(addr string) *server {
		return &server{cfg: Server{Addr: addr}, fsm: serverfsm.New(serverfsm.Config{SingleConnect: true})}
	}
	a, b, c := mk("a"), mk("b"), mk("c")
	act := &Actor{groups: map[string][]*server{"g": {a, b, c}}, now: func() time.Time { return now }}
	req := func() *pending { return &pending{req: &messages.Request{Group: "g"}} }
	kill := func(s *server) { s.fsm.Step(serverfsm.Failed{At: now, Cause: "test"}) }

	if got := act.pick(req()); got != a {
		t.Fatalf("all alive: picked %v, want a", name(got))
	}
	kill(a)
	if got := act.pick(req()); got != b {
		t.Fatalf("a dead: picked %v, want b (no waiting on a dead server)", name(got))
	}
	p := req()
	p.tried = []*server{b, c}
	if got := act.pick(p); got != nil {
		t.Fatalf("alive servers tried, a dead: picked %v, want none", name(got))
	}
	kill(b)
	kill(c)
	if got := act.pick(req()); got != a {
		t.Fatalf("all dead: picked %v, want a (tried in order)", name(got))
	}
	a.badKey = true
	if got := act.pick(req()); got != b {
		t.Fatalf("all dead, a with a key mismatch: picked %v, want b", name(got))
	}
	p = req()
	p.tried = []*server{b, c}
	if got := act.pick(p); got != nil {
		t.Fatalf("all dead and tried but the key-mismatched one: picked %v, want none", name(got))
	}
	b.fsm.Step(serverfsm.Answered{At: now})
	if got := act.pick(req()); got != b {
		t.Fatalf("b answered again: picked %v, want b", name(got))
	}
}

func name(s *server) string {
	if s == nil {
		return "none"
	}
	return s.cfg.Addr
}

// TestExpired: a request past its deadline is never sent; no deadline never expires.
func TestExpired(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	act := &Actor{now: func() time.Time { return now }}
	for _, tc := range []struct {
		dl   time.Time
		want bool
	}{{time.Time{}, false}, {now.Add(time.Nanosecond), false}, {now, true}, {now.Add(-time.Second), true}} {
		if got := act.expired(&pending{req: &messages.Request{Deadline: tc.dl}}); got != tc.want {
			t.Errorf("deadline %v: expired %v, want %v", tc.dl, got, tc.want)
		}
	}
	o := act.deadlineOutcome(&pending{req: &messages.Request{ID: 7}})
	if !o.CallerDeadline || !errors.Is(o.Err, tacplus.ErrTimeout) || o.ReqID != 7 {
		t.Errorf("deadline outcome %+v", o)
	}
}
