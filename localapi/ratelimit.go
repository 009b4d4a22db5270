package localapi

import (
	"sync"
	"time"
)

// Defaults of RateLimit.
const (
	DefaultMaxFailures = 5
	// DefaultFailureWindow is how long a key is remembered once its last delay has run out and nothing
	// new happened: then its failures are forgotten.
	DefaultFailureWindow = time.Minute
	// DefaultBaseDelay is the first delay, after MaxFailures failures; each further failure doubles it.
	DefaultBaseDelay = 10 * time.Second
	// DefaultMaxDelay caps the delay.
	DefaultMaxDelay = 10 * time.Minute
	// DefaultRateLimitKeys bounds the keys tracked at once.
	DefaultRateLimitKeys = 10000
	// sweepEvery bounds how often a full table is swept for expired keys (a sweep is O(keys)).
	sweepEvery = time.Second
)

// RateLimit bounds the attempts that carry a secret (a password, each password answer of an ASCII
// conversation, the answers of a CHPASS), per key. The key is (user, rhost) for a caller of the root uid
// (PAM in sshd, login, su), and the caller's uid for any other caller, so that a local user's failures
// throttle that user's own uid, never the person who logs in over sshd.
//
// An attempt reserves its slot before anything is sent: the attempts in flight and the failures on
// record together never exceed MaxFailures, so N concurrent attempts let exactly MaxFailures through. Past
// MaxFailures failures the key is delayed: BaseDelay after the last failure, doubling with each further
// failure up to MaxDelay, and one attempt at a time is let through when the delay has run out (growing
// delays, no fixed lockout). A PASS clears the key. A result that says nothing about the secret (no server
// answered) returns the slot. Anything else that ends a conversation holding a secret (FAIL, ERROR, an
// abort, an expiry) counts as a failure: aborting after a wrong password must not hide it.
//
// Memory is bounded by MaxKeys, and an active key is never dropped to make room: a new key that finds the
// table full of live keys is refused (fail closed, counted). A key leaves when nothing is in flight and
// Window has passed since its delay ran out (or since its last failure).
type RateLimit struct {
	MaxFailures int           // default DefaultMaxFailures; negative disables the limit
	Window      time.Duration // default DefaultFailureWindow
	BaseDelay   time.Duration // default DefaultBaseDelay
	MaxDelay    time.Duration // default DefaultMaxDelay
	MaxKeys     int           // default DefaultRateLimitKeys
}

func (r RateLimit) withDefaults() RateLimit {
	if r.MaxFailures == 0 {
		r.MaxFailures = DefaultMaxFailures
	}
	if r.Window <= 0 {
		r.Window = DefaultFailureWindow
	}
	if r.BaseDelay <= 0 {
		r.BaseDelay = DefaultBaseDelay
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = DefaultMaxDelay
	}
	if r.MaxDelay < r.BaseDelay {
		r.MaxDelay = r.BaseDelay
	}
	if r.MaxKeys <= 0 {
		r.MaxKeys = DefaultRateLimitKeys
	}
	return r
}

// limitKey is what a limit applies to: (user, rhost) for the root caller, the uid for a local caller.
type limitKey struct {
	local bool
	uid   uint32
	user  string
	rhost string
}

type keyState struct {
	failures int
	inflight int
	until    time.Time // no attempt before this (the delay)
	last     time.Time // the last failure
}

// Why the limiter refused an attempt.
const (
	limitDelayed = "rate_limited" // the key is delayed, or its free attempts are all in use
	limitFull    = "limiter_full" // the table is full of live keys
)

// limiter is the table of keys. Every method is O(1) except the sweep of a full table, at most once per
// sweepEvery.
type limiter struct {
	cfg       RateLimit
	now       func() time.Time
	mu        sync.Mutex
	keys      map[limitKey]*keyState
	nextSweep time.Time
}

func newLimiter(cfg RateLimit, now func() time.Time) *limiter {
	return &limiter{cfg: cfg, now: now, keys: make(map[limitKey]*keyState)}
}

func (l *limiter) enabled() bool { return l.cfg.MaxFailures > 0 }

// delay is the delay after n failures (n >= MaxFailures).
func (l *limiter) delay(n int) time.Duration {
	d := l.cfg.BaseDelay
	for i := l.cfg.MaxFailures; i < n && d < l.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, l.cfg.MaxDelay)
}

func (l *limiter) expired(st *keyState, now time.Time) bool {
	if st.inflight > 0 {
		return false
	}
	end := st.last
	if st.until.After(end) {
		end = st.until
	}
	return !now.Before(end.Add(l.cfg.Window))
}

// lookup returns k's state, forgetting it first when it expired.
func (l *limiter) lookup(k limitKey, now time.Time) *keyState {
	st := l.keys[k]
	if st != nil && l.expired(st, now) {
		delete(l.keys, k)
		return nil
	}
	return st
}

// blocked reports whether st admits no attempt now, and when to retry.
func (l *limiter) blocked(st *keyState, now time.Time) (bool, time.Duration) {
	if now.Before(st.until) {
		return true, st.until.Sub(now)
	}
	if st.failures+st.inflight < l.cfg.MaxFailures {
		return false, 0
	}
	if st.failures >= l.cfg.MaxFailures && st.inflight == 0 {
		return false, 0 // the delay ran out: one attempt
	}
	// The free attempts are in flight; their outcome decides.
	return true, l.cfg.BaseDelay
}

// check reports whether k would be refused now, without reserving anything.
func (l *limiter) check(k limitKey) (limited bool, retryAfter time.Duration) {
	if !l.enabled() {
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	st := l.lookup(k, now)
	if st == nil {
		return false, 0
	}
	return l.blocked(st, now)
}

// ticket is one reserved attempt; settle it exactly once (later calls do nothing).
type ticket struct {
	l    *limiter
	k    limitKey
	done bool
}

// The outcomes of an attempt.
type outcome uint8

const (
	outcomePass outcome = iota + 1
	outcomeFail
	outcomeVoid // nothing learned about the secret: the slot is returned
)

// reserve takes one attempt for k before anything is sent. It returns nil and why and when to retry when
// refused.
func (l *limiter) reserve(k limitKey) (*ticket, string, time.Duration) {
	if !l.enabled() {
		return &ticket{done: true}, "", 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	st := l.lookup(k, now)
	if st == nil {
		if len(l.keys) >= l.cfg.MaxKeys {
			l.sweep(now)
		}
		if len(l.keys) >= l.cfg.MaxKeys {
			return nil, limitFull, l.cfg.BaseDelay
		}
		st = &keyState{}
		l.keys[k] = st
	}
	if limited, after := l.blocked(st, now); limited {
		return nil, limitDelayed, after
	}
	st.inflight++
	return &ticket{l: l, k: k}, "", 0
}

// sweep drops the expired keys, at most once per sweepEvery.
func (l *limiter) sweep(now time.Time) {
	if now.Before(l.nextSweep) {
		return
	}
	l.nextSweep = now.Add(sweepEvery)
	for k, st := range l.keys {
		if l.expired(st, now) {
			delete(l.keys, k)
		}
	}
}

func (t *ticket) settle(o outcome) {
	if t == nil || t.done {
		return
	}
	t.done = true
	l := t.l
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.keys[t.k]
	if st == nil { // cannot happen: a key with an attempt in flight never leaves
		return
	}
	st.inflight--
	now := l.now()
	switch o {
	case outcomePass:
		st.failures, st.until, st.last = 0, time.Time{}, time.Time{}
	case outcomeFail:
		st.failures++
		st.last = now
		if st.failures >= l.cfg.MaxFailures {
			st.until = now.Add(l.delay(st.failures))
		}
	}
	if st.inflight == 0 && st.failures == 0 {
		delete(l.keys, t.k)
	}
}

// tracked is the number of keys on record.
func (l *limiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
