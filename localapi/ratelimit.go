package localapi

import (
	"context"
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
// record together never exceed MaxFailures, so N concurrent attempts let exactly MaxFailures through. An
// attempt that finds every free slot in flight waits (bounded by its request's deadline) for one to be
// settled rather than being refused, so that honest parallel logins of one user (automation opening many
// sessions at once) queue instead of failing; when the slots in flight turn into failures the waiters are
// refused. Past
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
	peer  string // a network peer whose uid is unknown (the TACACS+ front end's non-loopback clients)
}

type keyState struct {
	failures int
	inflight int
	until    time.Time     // no attempt before this (the delay)
	last     time.Time     // the last failure
	wake     chan struct{} // closed when an attempt settles; made by the first waiter
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

type verdict uint8

const (
	admit  verdict = iota + 1
	wait           // every free attempt is in flight: their outcome decides
	refuse         // delayed
)

// decide is what st says of a new attempt now, and when to retry when refused.
func (l *limiter) decide(st *keyState, now time.Time) (verdict, time.Duration) {
	switch {
	case now.Before(st.until):
		return refuse, st.until.Sub(now)
	case st.failures+st.inflight < l.cfg.MaxFailures:
		return admit, 0
	case st.failures >= l.cfg.MaxFailures && st.inflight == 0:
		return admit, 0 // the delay ran out: one attempt
	case st.failures >= l.cfg.MaxFailures:
		return refuse, l.cfg.BaseDelay // the one attempt after the delay is in flight
	}
	return wait, 0
}

// check reports whether k is refused now (delayed), without reserving anything.
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
	v, after := l.decide(st, now)
	return v == refuse, after
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

// reserve takes one attempt for k before anything is sent. When every free attempt of k is in flight it
// waits for one to settle, at most until ctx ends. It returns nil, why and when to retry when refused.
func (l *limiter) reserve(ctx context.Context, k limitKey) (*ticket, string, time.Duration) {
	if !l.enabled() {
		return &ticket{done: true}, "", 0
	}
	for {
		l.mu.Lock()
		now := l.now()
		st := l.lookup(k, now)
		if st == nil {
			if len(l.keys) >= l.cfg.MaxKeys {
				l.sweep(now)
			}
			if len(l.keys) >= l.cfg.MaxKeys {
				l.mu.Unlock()
				return nil, limitFull, l.cfg.BaseDelay
			}
			st = &keyState{}
			l.keys[k] = st
		}
		v, after := l.decide(st, now)
		switch v {
		case admit:
			st.inflight++
			l.mu.Unlock()
			return &ticket{l: l, k: k}, "", 0
		case refuse:
			l.mu.Unlock()
			return nil, limitDelayed, after
		}
		if st.wake == nil {
			st.wake = make(chan struct{})
		}
		wake := st.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, limitDelayed, l.cfg.BaseDelay
		}
	}
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
	if st.wake != nil {
		close(st.wake)
		st.wake = nil
	}
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
