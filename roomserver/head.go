package roomserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
)

// roomHead is what the writer needs to append to a room: its forward
// extremities, depth and current state. A head is only ever used by its
// room's worker (one at a time), so it needs no lock; after a failed commit
// it is dropped and reloaded from the database.
type roomHead struct {
	nid         int64
	id          string
	version     gomatrixserverlib.IRoomVersion
	extremities []string
	depth       int64
	snapshot    int64 // current state snapshot
	chainLen    int   // deltas between snapshot and the last full snapshot
	state       stateMap
}

// head returns the room's head, from the cache or the database; nil when
// the room is unknown.
func (rs *Roomserver) head(ctx context.Context, roomID string) (*roomHead, error) {
	if h, ok := rs.heads.get(roomID); ok {
		return h, nil
	}
	h, err := loadHead(ctx, rs, roomID)
	if err != nil || h == nil {
		return nil, err
	}
	rs.heads.put(roomID, h)
	return h, nil
}

func loadHead(ctx context.Context, rs *Roomserver, roomID string) (*roomHead, error) {
	h := &roomHead{id: roomID}
	var version, extremities string
	err := rs.db.QueryRowContext(ctx, `SELECT room_nid, version, snapshot_nid, extremities, depth
		FROM rs_rooms WHERE room_id = $1`, roomID).Scan(&h.nid, &version, &h.snapshot, &extremities, &h.depth)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load room %s: %w", roomID, err)
	}
	if h.version, err = gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(version)); err != nil {
		return nil, fmt.Errorf("room %s: %w", roomID, err)
	}
	if err := json.Unmarshal([]byte(extremities), &h.extremities); err != nil {
		return nil, fmt.Errorf("room %s extremities: %w", roomID, err)
	}
	if h.state, h.chainLen, err = loadSnapshot(ctx, rs.db, h.snapshot); err != nil {
		return nil, fmt.Errorf("room %s: %w", roomID, err)
	}
	return h, nil
}

// The writer's cache of parsed events holds at most eventCacheEntries
// events and about eventCacheBytes: a parsed PDU takes some three times
// its JSON (the JSON, its canonical form, the parsed fields). Counting
// entries alone let 50,000 member events of big rooms keep ~85 MB.
const (
	eventCacheEntries = 50000
	eventCacheBytes   = 32 << 20
)

func pduCost(ev gomatrixserverlib.PDU) int { return 3 * len(ev.JSON()) }

// event returns the parsed event with the given nid, cached: the writer
// reads the same few auth events (create, power levels, members) for every
// event it builds.
func (rs *Roomserver) event(ctx context.Context, version gomatrixserverlib.IRoomVersion, nid int64) (gomatrixserverlib.PDU, error) {
	if ev, ok := rs.events.get(nid); ok {
		return ev, nil
	}
	var (
		eventID  string
		data     []byte
		redacted bool
	)
	err := rs.db.QueryRowContext(ctx, `SELECT event_id, json, redacted FROM rs_events WHERE event_nid = $1`, nid).
		Scan(&eventID, &data, &redacted)
	if err != nil {
		return nil, fmt.Errorf("load event %d: %w", nid, err)
	}
	// A redacted member event has lost its displayname: a repeated join
	// must see that.
	ev, err := parseStored(version, eventID, data, redacted)
	if err != nil {
		return nil, err
	}
	rs.events.put(nid, ev)
	return ev, nil
}
