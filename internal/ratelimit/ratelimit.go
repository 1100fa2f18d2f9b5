// Package ratelimit bounds how often one user (or one IP address, before
// login) may perform an action: a token bucket per (action, key), sized
// by config.RateLimits. Buckets that have refilled are forgotten, so
// memory follows the number of recently active clients, not every client
// ever seen.
package ratelimit

import (
	"fmt"
	"sync"
	"time"

	"github.com/chappe-matrix/chappe/config"
)

// sweepEvery is how often idle buckets are looked for. Sweeping is done by
// the callers of Allow (no goroutine to stop), and sooner when the number
// of buckets has doubled since the last sweep, which bounds memory under
// a flood of distinct clients.
const sweepEvery = time.Minute

// Limiter holds the buckets of every configured action.
type Limiter struct {
	limits map[string]config.RateLimit
	now    func() time.Time

	mu        sync.Mutex
	buckets   map[key]*bucket
	lastSweep time.Time
	sweptSize int // number of buckets left by the last sweep
}

type key struct{ action, who string }

// New builds a limiter for the configured actions. An action that is not
// configured is not limited.
func New(cfg config.RateLimits) (*Limiter, error) {
	limits := make(map[string]config.RateLimit, len(cfg.Actions))
	for action, l := range cfg.Actions {
		if l.PerSecond <= 0 {
			return nil, fmt.Errorf("rate_limits.actions.%s.per_second: must be above 0, got %v", action, l.PerSecond)
		}
		if l.Burst < 1 {
			return nil, fmt.Errorf("rate_limits.actions.%s.burst: must be at least 1, got %d", action, l.Burst)
		}
		limits[action] = l
	}
	return &Limiter{limits: limits, now: time.Now, buckets: map[key]*bucket{}}, nil
}

// Allow spends one of who's tokens for action. When none is left it
// returns false and how long until the next one.
func (l *Limiter) Allow(action, who string) (bool, time.Duration) {
	limit, ok := l.limits[action]
	if !ok {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maybeSweep(now)
	k := key{action, who}
	b, ok := l.buckets[k]
	if !ok {
		b = &bucket{tokens: float64(limit.Burst), last: now}
		l.buckets[k] = b
	}
	return b.take(now, limit.PerSecond, limit.Burst)
}

// maybeSweep forgets full buckets. Called with mu held.
func (l *Limiter) maybeSweep(now time.Time) {
	if now.Sub(l.lastSweep) < sweepEvery && len(l.buckets) < 2*max(l.sweptSize, 1024) {
		return
	}
	for k, b := range l.buckets {
		limit := l.limits[k.action]
		if b.full(now, limit.PerSecond, limit.Burst) {
			delete(l.buckets, k)
		}
	}
	l.lastSweep = now
	l.sweptSize = len(l.buckets)
}

// Len is the number of buckets held (for tests and metrics).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
