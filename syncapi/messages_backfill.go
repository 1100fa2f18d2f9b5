package syncapi

import (
	"context"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/chappe-matrix/chappe/federation/fedapi"
)

// A room joined over federation starts here at the join: what came
// before is on the other servers, and so are the events of a hole /send
// left in the middle of the history (too many missing to fetch then).
// When /messages reaches such an event (readPage), the federation is
// asked for the events before it (backfill), which the roomserver stores
// at positions reserved below it, where the same tokens keep paginating.

const (
	// backfillWait bounds how long /messages waits for the federation,
	// which bounds a backfill itself to 20 s.
	backfillWait = 25 * time.Second
	// backfillRest is how long a gap whose backfill brought nothing (no
	// server has more, or none answers) is not asked about again.
	backfillRest = time.Minute
	// backfillMin is the least a backfill asks for: each costs a round
	// trip and the state at its oldest event, so pages are not small.
	backfillMin = 50
	// backfillFrom bounds the events a request starts from.
	backfillFrom = 5
	// maxBackfillRounds bounds the backfills of one /messages request.
	maxBackfillRounds = 3
	// maxBackfillRests bounds the gaps remembered as resting.
	maxBackfillRests = 4096
)

// historyBackfill is the state of backfills in this process.
type historyBackfill struct {
	flights singleflight.Group // one backfill per gap at a time

	mu    sync.Mutex
	rests map[string]time.Time // gap -> no backfill before then
}

// backfillLimit is how many events a backfill asks for: what the page
// still needs, at least backfillMin, at most what the roomserver has room
// for below the gaps (left; the answer also holds the gaps' own events):
// beyond that the oldest would not be stored, and the newest, cut off
// from their parents, neither.
func backfillLimit(want, gaps int, left int64) int {
	return int(min(int64(max(want+gaps, backfillMin)), left+int64(gaps)))
}

// backfill asks the federation for up to limit events older than the
// events from (gaps of roomID), and tells whether any were stored.
// Failures are logged: the client gets what is stored.
func (s *SyncAPI) backfill(ctx context.Context, roomID string, from []string, limit int) bool {
	b := &s.history
	key := roomID + " " + strings.Join(from, " ")
	b.mu.Lock()
	rest := b.rests[key]
	b.mu.Unlock()
	if time.Now().Before(rest) {
		return false
	}
	stored, _, _ := b.flights.Do(key, func() (any, error) {
		n := s.backfillOnce(ctx, roomID, from, limit)
		if n == 0 {
			b.rest(key)
		}
		return n, nil
	})
	return stored.(int) > 0
}

// rest keeps a gap from being asked about for backfillRest.
func (b *historyBackfill) rest(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.rests == nil {
		b.rests = map[string]time.Time{}
	}
	if len(b.rests) >= maxBackfillRests {
		for k, until := range b.rests {
			if now.After(until) {
				delete(b.rests, k)
			}
		}
	}
	b.rests[key] = now.Add(backfillRest)
}

// backfillOnce asks the federation for the events before from.
func (s *SyncAPI) backfillOnce(ctx context.Context, roomID string, from []string, limit int) int {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backfillWait)
	defer cancel()
	resp, err := fedapi.Backfill.Call(ctx, s.bus, &fedapi.BackfillRequest{
		RoomID: roomID, FromEventIDs: from, Limit: limit,
	})
	if err != nil {
		s.log.Warn("backfill failed", "room", roomID, "from", from, "err", err)
		return 0
	}
	return resp.Stored
}
