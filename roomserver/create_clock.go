package roomserver

import (
	"sync/atomic"
	"time"
)

// createClock hands out the timestamps of the create events this process
// builds. Room version 12 derives a room's ID from its create event, so
// the same user creating identical rooms in one millisecond (a bot, a
// script) would get one ID twice; each create event gets a millisecond of
// its own instead, at most a few milliseconds ahead of the clock under
// such a burst.
type createClock struct{ last atomic.Int64 }

func (c *createClock) next(now time.Time) time.Time {
	for {
		last := c.last.Load()
		ms := max(now.UnixMilli(), last+1)
		if c.last.CompareAndSwap(last, ms) {
			return time.UnixMilli(ms)
		}
	}
}
