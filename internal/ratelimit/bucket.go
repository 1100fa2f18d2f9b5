package ratelimit

import (
	"math"
	"time"
)

// bucket is one token bucket. It holds no clock of its own: callers pass
// the time, so the arithmetic is testable without sleeping.
type bucket struct {
	tokens float64   // available at last
	last   time.Time // when tokens was last brought up to date
}

// take spends one token if there is one. Otherwise it reports how long
// until one will be there.
func (b *bucket) take(now time.Time, perSecond float64, burst int) (bool, time.Duration) {
	b.refill(now, perSecond, burst)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := (1 - b.tokens) / perSecond
	return false, time.Duration(math.Ceil(wait * float64(time.Second)))
}

func (b *bucket) refill(now time.Time, perSecond float64, burst int) {
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = math.Min(float64(burst), b.tokens+elapsed*perSecond)
	}
	b.last = now
}

// full is true when the bucket has refilled to its burst: forgetting it
// then loses nothing, since a new bucket starts full.
func (b *bucket) full(now time.Time, perSecond float64, burst int) bool {
	return b.tokens+now.Sub(b.last).Seconds()*perSecond >= float64(burst)
}
