package localapi

import (
	"sync"
	"time"
)

// Defaults of RateLimit.
const (
	DefaultMaxFailures    = 5
	DefaultFailureWindow  = time.Minute
	DefaultRateLimitUsers = 10000
)

// RateLimit bounds failed authentications per user: after MaxFailures FAILs within Window, the user's
// authentications are refused with 429 without contacting any server, until the oldest failure leaves
// the window. Only a FAIL counts (not an unreachable server); a PASS clears that user's count and nobody
// else's.
type RateLimit struct {
	MaxFailures int           // default DefaultMaxFailures; negative disables the limit
	Window      time.Duration // default DefaultFailureWindow
	// MaxUsers bounds the users tracked at once (default DefaultRateLimitUsers). When full, users whose
	// failures all left the window are dropped first, then the one whose last failure is oldest.
	MaxUsers int
}

func (r RateLimit) withDefaults() RateLimit {
	if r.MaxFailures == 0 {
		r.MaxFailures = DefaultMaxFailures
	}
	if r.Window <= 0 {
		r.Window = DefaultFailureWindow
	}
	if r.MaxUsers <= 0 {
		r.MaxUsers = DefaultRateLimitUsers
	}
	return r
}

// limiter is a sliding-window counter of failures per user. Each user holds at most MaxFailures
// timestamps, so memory is bounded by MaxUsers × MaxFailures.
type limiter struct {
	cfg   RateLimit
	now   func() time.Time
	mu    sync.Mutex
	users map[string][]time.Time // failure times, oldest first, all within the window when last pruned
}

func newLimiter(cfg RateLimit, now func() time.Time) *limiter {
	return &limiter{cfg: cfg, now: now, users: make(map[string][]time.Time)}
}

func (l *limiter) enabled() bool { return l.cfg.MaxFailures > 0 }

// prune drops the failures that left the window; it deletes the user when none is left.
func (l *limiter) prune(user string, now time.Time) []time.Time {
	ts := l.users[user]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= l.cfg.Window {
		i++
	}
	if i == len(ts) {
		delete(l.users, user)
		return nil
	}
	ts = ts[i:]
	l.users[user] = ts
	return ts
}

// check reports whether user is limited now, and for how long.
func (l *limiter) check(user string) (limited bool, retryAfter time.Duration) {
	if !l.enabled() {
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	ts := l.prune(user, now)
	if len(ts) < l.cfg.MaxFailures {
		return false, 0
	}
	return true, ts[0].Add(l.cfg.Window).Sub(now)
}

// fail records one failure of user.
func (l *limiter) fail(user string) {
	if !l.enabled() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	ts := l.prune(user, now)
	if ts == nil && len(l.users) >= l.cfg.MaxUsers {
		l.evict(now)
	}
	if len(ts) >= l.cfg.MaxFailures {
		ts = ts[1:] // the window only needs the newest MaxFailures
	}
	l.users[user] = append(ts, now)
}

// evict makes room for one user: it drops every user whose failures left the window, and when that frees
// nothing, the user with the oldest last failure. O(users), and only when the map is full.
func (l *limiter) evict(now time.Time) {
	var (
		oldest     string
		oldestTime time.Time
	)
	for u, ts := range l.users {
		last := ts[len(ts)-1]
		if now.Sub(last) >= l.cfg.Window {
			delete(l.users, u)
			continue
		}
		if oldest == "" || last.Before(oldestTime) {
			oldest, oldestTime = u, last
		}
	}
	if len(l.users) >= l.cfg.MaxUsers && oldest != "" {
		delete(l.users, oldest)
	}
}

// pass clears user's failures.
func (l *limiter) pass(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.users, user)
}

// tracked is the number of users with failures on record.
func (l *limiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users)
}
