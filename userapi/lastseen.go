package userapi

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

const (
	// lastSeenEvery is the most often a device's last_seen_ms is written:
	// token lookups are the hottest path and must not each cost a write.
	lastSeenEvery = time.Minute
	// lastSeenFlush is how often the pending times are written.
	lastSeenFlush = 15 * time.Second
)

type deviceKey struct{ userID, deviceID string }

// lastSeen batches last-seen times in memory until the next flush.
type lastSeen struct {
	mu      sync.Mutex
	marked  map[deviceKey]int64 // when a time was last queued, per device
	pending map[deviceKey]int64 // times to write at the next flush
}

func newLastSeen() *lastSeen {
	return &lastSeen{marked: make(map[deviceKey]int64), pending: make(map[deviceKey]int64)}
}

// mark notes that the device was used at nowMS, unless it was already
// noted less than lastSeenEvery ago.
func (l *lastSeen) mark(userID, deviceID string, nowMS int64) {
	k := deviceKey{userID, deviceID}
	l.mu.Lock()
	defer l.mu.Unlock()
	if nowMS-l.marked[k] < lastSeenEvery.Milliseconds() {
		return
	}
	l.marked[k] = nowMS
	l.pending[k] = nowMS
}

// take returns the pending times and forgets marks old enough not to
// matter, so the map does not grow with every device ever seen.
func (l *lastSeen) take(nowMS int64) map[deviceKey]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.pending
	l.pending = make(map[deviceKey]int64)
	for k, t := range l.marked {
		if nowMS-t >= lastSeenEvery.Milliseconds() {
			delete(l.marked, k)
		}
	}
	return out
}

func (u *UserAPI) flushLoop() {
	defer close(u.done)
	tick := time.NewTicker(lastSeenFlush)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-u.stop:
			u.flushLastSeen()
			return
		}
		u.flushLastSeen()
	}
}

func (u *UserAPI) flushLastSeen() {
	times := u.seen.take(u.now().UnixMilli())
	if len(times) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := writeLastSeen(ctx, u.db, times); err != nil {
		// Only a statistic: losing one round is acceptable.
		u.log.Warn("store last-seen times", "err", err, "devices", len(times))
	}
}

func writeLastSeen(ctx context.Context, db *sqlutil.DB, times map[deviceKey]int64) error {
	return db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		for k, t := range times {
			// Never move backwards: another process may have written later.
			if _, err := tx.ExecContext(ctx, `UPDATE ua_devices SET last_seen_ms = $3
				WHERE user_id = $1 AND device_id = $2 AND last_seen_ms < $3`, k.userID, k.deviceID, t); err != nil {
				return fmt.Errorf("update last seen of %s/%s: %w", k.userID, k.deviceID, err)
			}
		}
		return nil
	})
}
