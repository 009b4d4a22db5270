package localapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tacagent/tacagent/tacplus"
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

// TestLimiter: free attempts, then growing delays with one attempt at a time; a PASS clears the key, a
// void outcome returns the slot, attempts in flight count against the free ones.
func TestLimiter(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newLimiter(RateLimit{MaxFailures: 3, Window: time.Minute, BaseDelay: 10 * time.Second, MaxDelay: 35 * time.Second}.withDefaults(), clk.now)
	mallory, alice := limitKey{user: "mallory"}, limitKey{user: "alice"}
	take := func(k limitKey) *ticket {
		t.Helper()
		tk, why, after := l.reserve(context.Background(), k)
		if tk == nil {
			t.Fatalf("reserve %v refused: %s %v", k, why, after)
		}
		return tk
	}
	refused := func(k limitKey, wantAfter time.Duration) {
		t.Helper()
		if tk, why, after := l.reserve(context.Background(), k); tk != nil || why != limitDelayed || after != wantAfter {
			t.Fatalf("reserve %v = %v %q %v, want refused for %v", k, tk, why, after, wantAfter)
		}
		if limited, after := l.check(k); !limited || after != wantAfter {
			t.Fatalf("check %v = %v %v, want limited for %v", k, limited, after, wantAfter)
		}
	}
	// Three in flight use every free attempt: a fourth waits for an outcome (here, until its context ends:
	// it is not let through), and is not "limited" meanwhile.
	a, b, c := take(mallory), take(mallory), take(mallory)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if tk, _, _ := l.reserve(ended, mallory); tk != nil {
		t.Fatal("a fourth attempt got a slot while three were in flight")
	}
	if limited, _ := l.check(mallory); limited {
		t.Fatal("check refuses while the free attempts are only in flight")
	}
	waiter := make(chan *ticket, 1)
	go func() {
		tk, _, _ := l.reserve(context.Background(), mallory)
		waiter <- tk
	}()
	b.settle(outcomeVoid) // no server answered: the slot comes back, to the waiter
	b.settle(outcomeFail) // a ticket settles once
	b = waitFor(t, waiter, "the waiting attempt to get the returned slot")
	if b == nil {
		t.Fatal("the waiting attempt was refused")
	}
	a.settle(outcomeFail)
	b.settle(outcomeFail)
	take(alice).settle(outcomePass) // alice's success clears nothing of mallory's
	c.settle(outcomeFail)           // the third failure: delayed 10 s
	refused(mallory, 10*time.Second)
	clk.advance(9 * time.Second)
	refused(mallory, time.Second)
	clk.advance(time.Second)
	d := take(mallory) // the delay ran out: one attempt, and only one
	refused(mallory, 10*time.Second)
	d.settle(outcomeFail) // the fourth failure doubles the delay
	refused(mallory, 20*time.Second)
	clk.advance(20 * time.Second)
	take(mallory).settle(outcomeFail) // the fifth: 40 s, capped at 35 s
	refused(mallory, 35*time.Second)
	clk.advance(35 * time.Second)
	take(mallory).settle(outcomePass) // her own success clears her key
	if l.tracked() != 0 {
		t.Fatalf("%d keys tracked after the only key passed", l.tracked())
	}
	// Failures below the limit are forgotten a Window after the last one.
	take(mallory).settle(outcomeFail)
	clk.advance(time.Minute)
	if limited, _ := l.check(mallory); limited || l.tracked() != 0 {
		t.Fatalf("a failure a window old is remembered: %d keys", l.tracked())
	}
}

// TestLimiterBoundedMemory: a full table of live keys refuses new keys (fail closed) instead of dropping
// an active limit; keys leave only when their delay and window ran out.
func TestLimiterBoundedMemory(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newLimiter(RateLimit{MaxFailures: 2, Window: time.Minute, BaseDelay: 10 * time.Second, MaxKeys: 10}.withDefaults(), clk.now)
	victim := limitKey{user: "victim", rhost: "198.51.100.7"}
	for i := 0; i < 2; i++ {
		tk, _, _ := l.reserve(context.Background(), victim)
		tk.settle(outcomeFail)
	}
	full := 0
	for i := 0; i < 1000; i++ {
		clk.advance(time.Millisecond)
		k := limitKey{user: "u" + strconv.Itoa(i)}
		tk, why, _ := l.reserve(context.Background(), k)
		if tk == nil {
			if why != limitFull {
				t.Fatalf("key %d refused for %q", i, why)
			}
			full++
			continue
		}
		tk.settle(outcomeFail)
		if n := l.tracked(); n > 10 {
			t.Fatalf("%d keys tracked, cap 10", n)
		}
	}
	if full != 1000-9 {
		t.Errorf("%d new keys refused, want %d", full, 1000-9)
	}
	if limited, _ := l.check(victim); !limited {
		t.Fatal("the churn of other keys made the limiter forget an active limit")
	}
	// When the victim's delay and window have run out, and the others' windows, the table frees up.
	clk.advance(10*time.Second + time.Minute)
	if tk, why, _ := l.reserve(context.Background(), limitKey{user: "late"}); tk == nil {
		t.Fatalf("after every key expired a new key is refused: %s", why)
	}
	if n := l.tracked(); n != 1 {
		t.Errorf("after the sweep %d keys tracked, want only the new one", n)
	}
	disabled := newLimiter(RateLimit{MaxFailures: -1}.withDefaults(), clk.now)
	for i := 0; i < 10; i++ {
		tk, _, _ := disabled.reserve(context.Background(), limitKey{user: "x"})
		tk.settle(outcomeFail)
	}
	if limited, _ := disabled.check(limitKey{user: "x"}); limited || disabled.tracked() != 0 {
		t.Error("a disabled limiter limits or tracks")
	}
}

// TestRateLimitEndToEnd: after MaxFailures FAILs, the key's authentications get 429 with Retry-After and
// never reach the backend; another user is unaffected; the user named in a GETUSER answer is checked
// before the server hears it; every password answer of an ASCII conversation counts, and aborting after
// one does not hide it; an unreachable server counts nothing.
func TestRateLimitEndToEnd(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	b := newFakeBackend()
	ts := startServer(t, b, func(c *Config) {
		c.RateLimit = RateLimit{MaxFailures: 3, Window: time.Minute, BaseDelay: 10 * time.Second}
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
	if r.status != http.StatusTooManyRequests || r.err.Code != CodeRateLimited || r.header.Get("Retry-After") != "10" {
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
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &le) || le.RetryAfter != 10*time.Second {
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
	waitCond(t, func() bool { return ts.convs.live() == 0 })
	// The delay runs out: one attempt, which passes and clears the key.
	clk.advance(10 * time.Second)
	if r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "alice", Type: TypePAP, Password: "pw"}, &res); res.Result != ResultPass {
		t.Fatalf("after the delay: %d %s", r.status, r.body)
	}

	// ASCII: each password answer is an attempt. Two wrong, then a third whose conversation the caller
	// aborts while the server is still checking it (user "slow"): that one counts too.
	for i := 0; i < 2; i++ {
		ts.post(t, "/v1/authenticate", AuthenRequest{User: "carol"}, &res)
		if r := ts.post(t, "/v1/conversations/"+res.Conversation, ConversationRequest{Answer: "wrong"}, &res); res.Result != ResultFail {
			t.Fatalf("carol %d: %d %s", i, r.status, r.body)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	slowDone := make(chan error, 1)
	go func() {
		_, err := ts.client.Authenticate(ctx, AuthenRequest{User: "slow", RemAddr: ""}, func(context.Context, Prompt) (string, error) {
			return "guess", nil
		})
		slowDone <- err
	}()
	waitCond(t, func() bool {
		ts.limiter.mu.Lock()
		defer ts.limiter.mu.Unlock()
		st := ts.limiter.keys[limitKey{user: "slow"}]
		return st != nil && st.inflight == 1
	})
	cancel()
	if err := waitFor(t, slowDone, "the abandoned authentication"); err == nil {
		t.Fatal("an abandoned authentication passed")
	}
	waitCond(t, func() bool { return ts.convs.live() == 0 })
	if limited, _ := ts.limiter.check(limitKey{user: "slow"}); limited {
		t.Fatal("one failure limited a key of limit 3")
	}
	ts.limiter.mu.Lock()
	st := ts.limiter.keys[limitKey{user: "slow"}]
	ts.limiter.mu.Unlock()
	if st == nil || st.failures != 1 {
		t.Fatalf("the password of an abandoned conversation did not count: %+v", st)
	}
	// Two conversations reach their password prompt before either is answered; the third failure closes
	// the key, so the other's answer is refused before the server sees it.
	var third, fourth AuthenResult
	ts.post(t, "/v1/authenticate", AuthenRequest{User: "carol"}, &third)
	ts.post(t, "/v1/authenticate", AuthenRequest{User: "carol"}, &fourth)
	if third.Result != ResultPrompt || fourth.Result != ResultPrompt {
		t.Fatalf("carol's prompts: %+v %+v", third, fourth)
	}
	if r := ts.post(t, "/v1/conversations/"+third.Conversation, ConversationRequest{Answer: "wrong"}, &res); res.Result != ResultFail {
		t.Fatalf("carol 3: %d %s", r.status, r.body)
	}
	carol := b.count("carol")
	if r := ts.post(t, "/v1/conversations/"+fourth.Conversation, ConversationRequest{Answer: "pw"}, nil); r.status != http.StatusTooManyRequests {
		t.Fatalf("carol's fourth password reached the server: %d %s", r.status, r.body)
	}
	if r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "carol"}, nil); r.status != http.StatusTooManyRequests {
		t.Fatalf("carol's fifth start: %d %s", r.status, r.body)
	}
	if b.count("carol") != carol {
		t.Fatal("a limited attempt reached the backend")
	}
	waitCond(t, func() bool { return ts.convs.live() == 0 })

	// Unreachable servers are not the user's fault and do not count.
	for i := 0; i < 5; i++ {
		var res AuthenResult
		if r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "unreach", Type: TypePAP, Password: "pw"}, &res); res.Result != ResultUnavailable {
			t.Fatalf("unreach %d: %d %s", i, r.status, r.body)
		}
		if res.User != "unreach" { // the backend named nobody: the Server names the user the caller gave
			t.Fatalf("unreach %d: the result names user %q", i, res.User)
		}
	}
	if b.count("unreach") != 5 {
		t.Fatalf("unreachable attempts were limited: %d reached the backend", b.count("unreach"))
	}
}

// TestRateLimitConcurrent: 1,000 concurrent attempts with a wrong password for one user: exactly
// MaxFailures reach the backend, because each reserves its slot before anything is sent.
func TestRateLimitConcurrent(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, func(c *Config) { c.RateLimit = RateLimit{MaxFailures: 5} })
	const n = 1000
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		failed, limited int
		others          []string
	)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := ts.client.Authenticate(context.Background(), AuthenRequest{User: "alice", Type: TypePAP, Password: "guess"}, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrRateLimited):
				limited++
			case errors.Is(err, tacplus.ErrAuthenticationFailed):
				failed++
			default:
				others = append(others, fmt.Sprint(err))
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("%d unexpected results, first: %s", len(others), others[0])
	}
	if got := b.count("alice"); got != 5 || failed != 5 || limited != n-5 {
		t.Fatalf("%d attempts reached the backend (%d FAIL, %d limited), want exactly 5", got, failed, limited)
	}
}

// TestRateLimitLocalCaller: a local (non-root) caller's failures throttle that caller's uid, whatever user
// it names, and never the user who logs in through root's PAM (sshd).
func TestRateLimitLocalCaller(t *testing.T) {
	bin := childBinary(t)
	b := newFakeBackend()
	ts := startServer(t, b, func(c *Config) {
		c.Group = "nogroup"
		c.RateLimit = RateLimit{MaxFailures: 3}
	})
	const nobody = 65534
	guess := `{"user":"alice","type":"pap","password":"guess","rem_addr":"203.0.113.9"}`
	for i := 0; i < 3; i++ {
		if status, body := runAsPeer(t, bin, ts.sock, nobody, nobody, nil, "/v1/authenticate", guess); status != 200 || !strings.Contains(body, `"result":"fail"`) {
			t.Fatalf("local failure %d: %d %s", i, status, body)
		}
	}
	// The local caller is now delayed, for any user it names.
	other := `{"user":"bob","type":"pap","password":"pw"}`
	if status, body := runAsPeer(t, bin, ts.sock, nobody, nobody, nil, "/v1/authenticate", other); status != http.StatusTooManyRequests {
		t.Fatalf("the limited local caller got through: %d %s", status, body)
	}
	// Root's PAM (sshd) logs alice in from the rhost the local caller named: unaffected.
	var res AuthenResult
	if r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "alice", Type: TypePAP, Password: "pw", RemAddr: "203.0.113.9"}, &res); res.Result != ResultPass {
		t.Fatalf("the local caller's failures locked out the sshd user: %d %s", r.status, r.body)
	}
	if res.User != "alice" {
		t.Errorf("the result names user %q", res.User)
	}
}

// TestRateLimitChpass: a CHPASS is one attempt (its old password), however many passwords it carries; a
// wrong old password counts as a failure.
func TestRateLimitChpass(t *testing.T) {
	ts := startServer(t, newFakeBackend(), func(c *Config) { c.RateLimit = RateLimit{MaxFailures: 2} })
	chpass := func(old string) string {
		t.Helper()
		var res AuthenResult
		ts.post(t, "/v1/authenticate", AuthenRequest{User: "dave", Action: ActionChpass}, &res)
		for _, a := range []string{old, "new-pw", "new-pw"} {
			if res.Result != ResultPrompt {
				t.Fatalf("chpass: expected a prompt, got %+v", res)
			}
			if r := ts.post(t, "/v1/conversations/"+res.Conversation, ConversationRequest{Answer: Secret(a)}, &res); r.status != 200 {
				return strconv.Itoa(r.status)
			}
		}
		return res.Result
	}
	if got := chpass("pw"); got != ResultPass {
		t.Fatalf("a CHPASS with three passwords under a limit of 2: %s", got)
	}
	if got := chpass("wrong"); got != ResultFail {
		t.Fatalf("wrong old password: %s", got)
	}
	if got := chpass("wrong"); got != ResultFail {
		t.Fatalf("second wrong old password: %s", got)
	}
	var res AuthenResult
	if r := ts.post(t, "/v1/authenticate", AuthenRequest{User: "dave", Action: ActionChpass}, &res); r.status != http.StatusTooManyRequests {
		t.Fatalf("a third CHPASS after two failures: %d %s", r.status, r.body)
	}
}

// TestRateLimitHonestParallelLogins: 20 concurrent logins of one user with the right password (automation
// opening many sessions at once) all pass: past the free attempts they wait for a slot instead of being
// refused, and never more than MaxFailures are in flight.
func TestRateLimitHonestParallelLogins(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, func(c *Config) { c.RateLimit = RateLimit{MaxFailures: 5} })
	const n = 20
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := ts.client.Authenticate(context.Background(), AuthenRequest{User: "slow", Password: "pw"}, nil)
			errs <- err
		}()
	}
	waitCond(t, func() bool { return b.count("slow") == 5 })
	ts.limiter.mu.Lock()
	inflight := ts.limiter.keys[limitKey{user: "slow"}].inflight
	ts.limiter.mu.Unlock()
	if got := b.count("slow"); got != 5 || inflight != 5 {
		t.Fatalf("%d attempts reached the backend, %d in flight; want 5 while the first are held", got, inflight)
	}
	close(b.release)
	for i := 0; i < n; i++ {
		if err := waitFor(t, errs, "a parallel login"); err != nil {
			t.Fatalf("parallel login %d: %v", i, err)
		}
	}
	if got := b.count("slow"); got != n {
		t.Fatalf("%d logins reached the backend, want %d", got, n)
	}
}

// TestRateLimitShutdownVoid: a conversation that Shutdown aborts while its password is being checked
// returns its slot; the abort was not the caller's doing and counts as no failure.
func TestRateLimitShutdownVoid(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, func(c *Config) { c.RateLimit = RateLimit{MaxFailures: 3} })
	done := make(chan error, 1)
	go func() {
		_, err := ts.client.Authenticate(context.Background(), AuthenRequest{User: "slow", Password: "pw"}, nil)
		done <- err
	}()
	waitCond(t, func() bool { return b.count("slow") == 1 })
	if err := ts.stopWithin(t, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want its deadline to pass with the conversation aborted", err)
	}
	if err := waitFor(t, done, "the aborted login"); err == nil {
		t.Fatal("a login aborted by Shutdown passed")
	}
	if n := ts.limiter.tracked(); n != 0 {
		t.Fatalf("the aborted login left %d keys on record", n)
	}
}
