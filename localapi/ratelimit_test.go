package localapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLimiter(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newLimiter(RateLimit{MaxFailures: 3, Window: time.Minute, MaxUsers: 100}.withDefaults(), clk.now)
	type op struct {
		advance time.Duration
		do      string // "fail", "pass", "check"
		user    string
		limited bool
		retry   time.Duration
	}
	ops := []op{
		{do: "fail", user: "mallory"},
		{advance: 10 * time.Second, do: "fail", user: "mallory"},
		{do: "check", user: "mallory", limited: false},
		{advance: 10 * time.Second, do: "fail", user: "mallory"},
		{do: "check", user: "mallory", limited: true, retry: 40 * time.Second}, // the first failure leaves at t=60s
		{do: "check", user: "alice", limited: false},
		{do: "pass", user: "alice"}, // alice's success clears nothing of mallory's
		{do: "check", user: "mallory", limited: true, retry: 40 * time.Second},
		{advance: 40 * time.Second, do: "check", user: "mallory", limited: false}, // sliding: one left the window
		{do: "fail", user: "mallory"},
		{do: "check", user: "mallory", limited: true, retry: 10 * time.Second},
		{do: "pass", user: "mallory"}, // her own success clears her count
		{do: "check", user: "mallory", limited: false},
	}
	for i, o := range ops {
		clk.advance(o.advance)
		switch o.do {
		case "fail":
			l.fail(o.user)
		case "pass":
			l.pass(o.user)
		case "check":
			limited, retry := l.check(o.user)
			if limited != o.limited || retry != o.retry {
				t.Fatalf("op %d: check(%s) = %v %v, want %v %v", i, o.user, limited, retry, o.limited, o.retry)
			}
		}
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newLimiter(RateLimit{MaxFailures: 2, Window: time.Minute, MaxUsers: 10}, clk.now)
	l.fail("victim")
	l.fail("victim")
	for i := 0; i < 1000; i++ {
		clk.advance(time.Millisecond)
		for j := 0; j < 5; j++ { // more failures than the window keeps: each user holds at most 2
			l.fail("u" + strconv.Itoa(i))
		}
		if n := l.tracked(); n > 10 {
			t.Fatalf("%d users tracked, cap 10", n)
		}
	}
	l.mu.Lock()
	for u, ts := range l.users {
		if len(ts) > 2 {
			t.Errorf("user %s holds %d timestamps", u, len(ts))
		}
	}
	l.mu.Unlock()
	// After the window every tracked user is stale: a new user's arrival drops them all.
	clk.advance(2 * time.Minute)
	l.fail("late")
	if n := l.tracked(); n != 1 {
		t.Errorf("after the window, %d users tracked, want only the new one", n)
	}
	disabled := newLimiter(RateLimit{MaxFailures: -1}.withDefaults(), clk.now)
	for i := 0; i < 10; i++ {
		disabled.fail("x")
	}
	if limited, _ := disabled.check("x"); limited || disabled.tracked() != 0 {
		t.Error("a disabled limiter limits or tracks")
	}
}

// TestRateLimitEndToEnd: after MaxFailures FAILs, the user's authentications get 429 with Retry-After and
// never reach the backend; another user is unaffected; the same holds when the user is only learned from a
// GETUSER answer.
func TestRateLimitEndToEnd(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	b := newFakeBackend()
	ts := startServer(t, b, func(c *Config) {
		c.RateLimit = RateLimit{MaxFailures: 3, Window: time.Minute}
		c.Now = clk.now
	})
	bad := AuthenRequest{User: "alice", Type: TypePAP, Password: "wrong"}
	for i := 0; i < 3; i++ {
		var res AuthenResult
		if r := ts.post(t, "/v1/authenticate", bad, &res); r.status != 200 || res.Result != ResultFail {
			t.Fatalf("failure %d: %d %s", i, r.status, r.body)
		}
	}
	calls := b.count("alice")
	r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "alice", Type: TypePAP, Password: "pw"}, nil)
	if r.status != http.StatusTooManyRequests || r.err.Code != CodeRateLimited || r.header.Get("Retry-After") != "60" {
		t.Fatalf("limited: %d %v %s", r.status, r.header, r.body)
	}
	if b.count("alice") != calls {
		t.Fatal("a limited authentication reached the backend")
	}
	if got := testutil.ToFloat64(ts.metrics.AuthRateLimited); got != 1 {
		t.Errorf("auth_rate_limited_total = %v", got)
	}
	// Another user passes, and that clears nothing of alice's.
	var res AuthenResult
	if r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "bob", Type: TypePAP, Password: "pw"}, &res); res.Result != ResultPass {
		t.Fatalf("bob: %d %s", r.status, r.body)
	}
	// The Client reports it with the retry delay.
	_, err := ts.client.Authenticate(context.Background(), AuthenRequest{User: "alice", Type: TypePAP, Password: "pw"}, nil)
	var le *Error
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &le) || le.RetryAfter != time.Minute {
		t.Fatalf("client: %v %+v", err, le)
	}
	// The user named in a GETUSER answer is checked before the backend hears it.
	ts.post(t, "/v1/authenticate", AuthenRequest{}, &res)
	if res.Result != ResultPrompt || res.Prompt.Kind != PromptUser {
		t.Fatalf("ascii start: %+v", res)
	}
	r = ts.post(t, "/v1/conversations/"+res.Conversation, ConversationRequest{Answer: "alice"}, nil)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("limited via GETUSER: %d %s", r.status, r.body)
	}
	if err := waitFor(t, b.ended, "the aborted conversation"); err == nil {
		t.Fatal("the conversation went on")
	}
	// The window slides: a minute later alice may try again.
	clk.advance(time.Minute)
	if r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "alice", Type: TypePAP, Password: "pw"}, &res); res.Result != ResultPass {
		t.Fatalf("after the window: %d %s", r.status, r.body)
	}
	// Unreachable servers are not the user's fault and do not count.
	for i := 0; i < 5; i++ {
		var res AuthenResult
		if r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "unreach", Type: TypePAP, Password: "pw"}, &res); res.Result != ResultUnavailable {
			t.Fatalf("unreach %d: %d %s", i, r.status, r.body)
		}
	}
	if b.count("unreach") != 5 {
		t.Fatalf("unreachable attempts were limited: %d reached the backend", b.count("unreach"))
	}
}
