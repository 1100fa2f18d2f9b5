package syncapi

import (
	"context"
	"sync"
	"time"
)

// onlineTouches remembers which users this process recently found online
// with a fresh last active time, so that a sync's set_presence=online (the
// default, on every sync) reads and writes nothing most of the time: a
// write transaction per sync would queue every sync behind the
// roomserver's commits on SQLite's single writer.
//
// An entry is dropped when it is older than touchEvery, and when any
// process publishes a presence change of the user (kindPresence), so that
// a state set elsewhere (an explicit "unavailable", a remote update) is
// not masked by the memory of an earlier "online".
type onlineTouches struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// fresh says whether userID was found online less than touchEvery ago.
func (o *onlineTouches) fresh(userID string, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.seen[userID]
	return ok && now.Sub(t) < touchEvery
}

// remember records that userID is online with a last active time of now.
func (o *onlineTouches) remember(userID string, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen == nil {
		o.seen = map[string]time.Time{}
	}
	// Old entries go when the map grows, so that users who stopped
	// syncing are not remembered for ever.
	if len(o.seen) >= onlineTouchesPrune {
		for u, t := range o.seen {
			if now.Sub(t) >= touchEvery {
				delete(o.seen, u)
			}
		}
	}
	o.seen[userID] = now
}

func (o *onlineTouches) forget(userID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.seen, userID)
}

// onlineTouchesPrune is the size at which remember sweeps stale entries.
const onlineTouchesPrune = 4096

// onOutput forgets the users whose presence changed, then lets the
// notifier wake whoever the message concerns.
func (s *SyncAPI) onOutput(ctx context.Context, seq uint64, m *OutputMessage) error {
	if m.Kind == kindPresence {
		s.touches.forget(m.UserID)
	}
	return s.notifier.onOutput(ctx, seq, m)
}
