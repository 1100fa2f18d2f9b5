package syncapi

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/roomserver"
)

// A room joined over federation starts here at the join: what came
// before is on the other servers. When /messages paginates back past the
// earliest events stored, the federation is asked for older ones
// (backfill), which the roomserver stores at positions below the join,
// where the same tokens keep paginating.

const (
	// backfillWait bounds how long /messages waits for the federation,
	// which bounds a backfill itself to 20 s.
	backfillWait = 25 * time.Second
	// backfillRest is how long a room whose backfill brought nothing (no
	// server has more, or none answers) is not asked about again.
	backfillRest = time.Minute
	// backfillMin is the least a backfill asks for: each costs a round
	// trip and the state at its oldest event, so pages are not small.
	backfillMin = 50
	// backfillFrom bounds the backward extremities named in a request.
	backfillFrom = 5
	// maxBackfillRounds bounds the backfills of one /messages request.
	maxBackfillRounds = 3
)

// historyBackfill is the state of backfills in this process.
type historyBackfill struct {
	init    sync.Once
	rooms   roomserver.FederationReader // the DAG's backward extremities
	flights singleflight.Group          // one backfill per room at a time

	mu    sync.Mutex
	rests map[string]time.Time // room -> no backfill before then
}

// needsBackfill tells whether /messages, having read evs (oldest last),
// reached the start of what is stored of a room whose history goes on
// before it: the room's create event is not among them.
func needsBackfill(evs []roomserver.StreamEvent) bool {
	return len(evs) == 0 || evs[len(evs)-1].Event.Type != "m.room.create"
}

// backfill asks the federation for up to limit events older than the
// earliest stored in roomID, and tells whether any were stored.
// Failures are logged: the client gets what is stored.
func (s *SyncAPI) backfill(ctx context.Context, roomID string, limit int) bool {
	b := &s.history
	b.init.Do(func() {
		b.rooms = roomserver.NewFederationReader(s.store.db)
		b.rests = map[string]time.Time{}
	})
	b.mu.Lock()
	rest := b.rests[roomID]
	b.mu.Unlock()
	if time.Now().Before(rest) {
		return false
	}
	stored, _, _ := b.flights.Do(roomID, func() (any, error) {
		n := s.backfillOnce(ctx, roomID, limit)
		if n == 0 {
			b.mu.Lock()
			b.rests[roomID] = time.Now().Add(backfillRest)
			b.mu.Unlock()
		}
		return n, nil
	})
	return stored.(int) > 0
}

// backfillOnce starts from the room's shallowest backward extremities:
// deeper ones are gaps in the middle of the history (left by /send's gap
// filling), which pagination reaches last.
func (s *SyncAPI) backfillOnce(ctx context.Context, roomID string, limit int) int {
	rooms := s.history.rooms
	ids, err := rooms.BackwardExtremities(ctx, roomID)
	if err != nil || len(ids) == 0 {
		if err != nil {
			s.log.Warn("backfill: backward extremities", "room", roomID, "err", err)
		}
		return 0
	}
	evs, err := rooms.Events(ctx, ids, false)
	if err != nil {
		s.log.Warn("backfill: backward extremities", "room", roomID, "err", err)
		return 0
	}
	slices.SortFunc(evs, func(a, b roomserver.StoredPDU) int { return cmp.Compare(a.Depth, b.Depth) })
	from := make([]string, 0, backfillFrom)
	for _, ev := range evs[:min(len(evs), backfillFrom)] {
		from = append(from, ev.EventID)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backfillWait)
	defer cancel()
	resp, err := fedapi.Backfill.Call(ctx, s.bus, &fedapi.BackfillRequest{
		RoomID: roomID, FromEventIDs: from, Limit: max(limit+len(from), backfillMin),
	})
	if err != nil {
		s.log.Info("backfill failed", "room", roomID, "err", err)
		return 0
	}
	return resp.Stored
}
