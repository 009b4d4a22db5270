package localapi

import (
	"context"
	"time"
)

// Limiter is the failure rate limit of authentication attempts (RateLimit) for a front end other than the
// local API: the loopback TACACS+ front end. Server.Limiter shares the local API's own table, so that an
// attempt counts against its key whichever front end it came through.
type Limiter struct {
	l       *limiter
	rootUID uint32
}

// NewLimiter returns a Limiter with its own table.
func NewLimiter(cfg RateLimit) *Limiter {
	return &Limiter{l: newLimiter(cfg.withDefaults(), time.Now)}
}

// Limiter returns the local API's rate limit, shared.
func (s *Server) Limiter() *Limiter { return &Limiter{l: s.limiter, rootUID: s.rule.rootUID} }

// Attempt is one reserved attempt. Settle it exactly once with Pass, Fail or Void; later calls do nothing.
// A nil Attempt does nothing.
type Attempt struct{ t *ticket }

// Pass clears the key's failures.
func (a *Attempt) Pass() { a.settle(outcomePass) }

// Fail counts a failure.
func (a *Attempt) Fail() { a.settle(outcomeFail) }

// Void returns the slot: nothing was learned about the secret (no server answered).
func (a *Attempt) Void() { a.settle(outcomeVoid) }

func (a *Attempt) settle(o outcome) {
	if a != nil {
		a.t.settle(o)
	}
}

// ReserveUID reserves an attempt for a caller whose uid is known, keyed as the local API keys it: (user,
// rhost) for root, the uid for any other caller. When refused it returns nil, the reason
// ("rate_limited" or "limiter_full") and when to retry.
func (l *Limiter) ReserveUID(ctx context.Context, uid uint32, user, rhost string) (*Attempt, string, time.Duration) {
	k := limitKey{local: true, uid: uid}
	if uid == l.rootUID {
		k = limitKey{user: user, rhost: rhost}
	}
	return l.reserve(ctx, k)
}

// ReservePeer reserves an attempt for a network peer whose uid is unknown, keyed by the peer (its address
// without the port): its failures throttle itself.
func (l *Limiter) ReservePeer(ctx context.Context, peer string) (*Attempt, string, time.Duration) {
	return l.reserve(ctx, limitKey{peer: peer})
}

func (l *Limiter) reserve(ctx context.Context, k limitKey) (*Attempt, string, time.Duration) {
	t, why, after := l.l.reserve(ctx, k)
	if t == nil {
		return nil, why, after
	}
	return &Attempt{t: t}, "", 0
}
