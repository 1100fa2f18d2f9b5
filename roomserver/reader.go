package roomserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// reader implements EventReader on the roomserver's tables. It only reads,
// so any process may hold one on the shared database.
type reader struct {
	db        *sqlutil.DB
	snapshots *snapshotCache
	rooms     *lru[string, roomInfo]
}

// roomInfo is what never changes about a room.
type roomInfo struct {
	nid     int64
	id      string
	version gomatrixserverlib.IRoomVersion
}

// NewEventReader reads what the roomserver stored in db.
func NewEventReader(db *sqlutil.DB) EventReader { return newReader(db) }

func newReader(db *sqlutil.DB) *reader {
	return &reader{db: db, snapshots: newSnapshotCache(db, snapshotCacheEntries, snapshotCacheStateEntries), rooms: newLRU[string, roomInfo](16384)}
}

var _ EventReader = (*reader)(nil)

// timelineEvent is the condition on rs_events (as e) of the events the
// EventReader returns: outliers, rejected and soft-failed events have
// negative positions, except a local user's membership in a room this
// server is not in, an outlier with a position that /sync reads through
// MembershipChanges alone.
const timelineEvent = `e.stream_pos > 0 AND e.outlier = FALSE AND e.soft_failed = FALSE AND e.rejected = FALSE`

// room looks a room up; ok is false when it is unknown.
func (r *reader) room(ctx context.Context, roomID string) (roomInfo, bool, error) {
	if info, ok := r.rooms.get(roomID); ok {
		return info, true, nil
	}
	info := roomInfo{id: roomID}
	var version string
	err := r.db.QueryRowContext(ctx, `SELECT room_nid, version FROM rs_rooms WHERE room_id = $1`, roomID).Scan(&info.nid, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return info, false, nil
	}
	if err != nil {
		return info, false, fmt.Errorf("look up room %s: %w", roomID, err)
	}
	if info.version, err = gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(version)); err != nil {
		return info, false, fmt.Errorf("room %s: %w", roomID, err)
	}
	r.rooms.put(roomID, info)
	return info, true, nil
}

func (r *reader) MaxPos(ctx context.Context) (int64, error) {
	var pos int64
	if err := r.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(stream_pos), 0) FROM rs_events WHERE stream_pos > 0`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("read max stream position: %w", err)
	}
	return pos, nil
}

// storedRange reads the events of a room with from < pos <= to: the first
// limit in ascending order, or with backwards the last limit in
// descending order (limit <= 0: all).
func (r *reader) storedRange(ctx context.Context, room roomInfo, from, to int64, limit int, backwards bool) ([]storedEvent, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	query := eventSelect + `WHERE e.room_nid = $1 AND e.stream_pos > $2 AND e.stream_pos <= $3 AND ` + timelineEvent + `
		ORDER BY e.stream_pos ASC LIMIT $4`
	if backwards {
		query = eventSelect + `WHERE e.room_nid = $1 AND e.stream_pos > $2 AND e.stream_pos <= $3 AND ` + timelineEvent + `
		ORDER BY e.stream_pos DESC LIMIT $4`
	}
	rows, err := r.db.QueryContext(ctx, query, room.nid, from, to, limit)
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", room.id, err)
	}
	return scanEvents(rows)
}

func (r *reader) RoomsWithEvents(ctx context.Context, from, to int64) ([]string, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT DISTINCT r.room_id FROM rs_events e JOIN rs_rooms r ON r.room_nid = e.room_nid
		WHERE e.stream_pos > $1 AND e.stream_pos <= $2 AND `+timelineEvent, from, to)
	if err != nil {
		return nil, fmt.Errorf("rooms with events in (%d, %d]: %w", from, to, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scan room: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// eventAtOrBefore finds roomNID's latest event at or before pos and the
// room's state snapshots just before and after it was applied (which,
// where branches met, are not the event's own state before and after).
func (r *reader) eventAtOrBefore(ctx context.Context, roomNID, pos int64) (evPos, before, after int64, found bool, err error) {
	err = r.db.QueryRowContext(ctx, `SELECT e.stream_pos, e.room_snapshot_before_nid, e.room_snapshot_nid FROM rs_events e
		WHERE e.room_nid = $1 AND e.stream_pos <= $2 AND `+timelineEvent+` ORDER BY e.stream_pos DESC LIMIT 1`,
		roomNID, pos).Scan(&evPos, &before, &after)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, 0, false, fmt.Errorf("find event at position %d: %w", pos, err)
	}
	return evPos, before, after, true, nil
}

func (r *reader) Events(ctx context.Context, roomID string, from, to int64, limit int, backwards bool) ([]StreamEvent, error) {
	room, ok, err := r.room(ctx, roomID)
	if err != nil || !ok {
		return nil, err
	}
	stored, err := r.storedRange(ctx, room, from, to, limit, backwards)
	if err != nil {
		return nil, err
	}
	out := make([]StreamEvent, 0, len(stored))
	for i := range stored {
		ce, err := stored[i].clientEvent(room)
		if err != nil {
			return nil, err
		}
		out = append(out, StreamEvent{Pos: stored[i].pos, Event: ce, SenderDeviceID: stored[i].deviceID, TxnID: stored[i].txnID})
	}
	ptrs := make([]*ClientEvent, len(out))
	for i := range out {
		ptrs[i] = &out[i].Event
	}
	// Who reads is unknown here: see bundle for current_user_participated.
	if err := r.bundle(ctx, room, "", ptrs); err != nil {
		return nil, err
	}
	return out, nil
}

func (r *reader) StateAt(ctx context.Context, roomID string, pos int64) ([]ClientEvent, error) {
	return r.SelectState(ctx, roomID, StateSelection{Pos: pos})
}

func (r *reader) StateBefore(ctx context.Context, roomID string, pos int64) ([]ClientEvent, error) {
	return r.SelectState(ctx, roomID, StateSelection{Pos: pos, Before: true})
}

// snapshotAt finds the snapshot of roomNID's state just after its latest
// event at or before pos, or, with before, just before the event at pos;
// found is false when the room has no event at or before pos (the empty
// state).
func (r *reader) snapshotAt(ctx context.Context, roomNID, pos int64, before bool) (snapshot int64, found bool, err error) {
	evPos, snapBefore, snapAfter, found, err := r.eventAtOrBefore(ctx, roomNID, pos)
	if err != nil || !found {
		return 0, false, err
	}
	if before && evPos == pos {
		return snapBefore, true, nil
	}
	// No event of this room at pos: the state before pos is the state
	// after the room's previous event.
	return snapAfter, true, nil
}

func (r *reader) SelectState(ctx context.Context, roomID string, sel StateSelection) ([]ClientEvent, error) {
	room, ok, err := r.room(ctx, roomID)
	if err != nil || !ok {
		return nil, err
	}
	snapshot, found, err := r.snapshotAt(ctx, room.nid, sel.Pos, sel.Before)
	if err != nil || !found {
		return nil, err
	}
	state, err := r.snapshots.state(ctx, snapshot)
	if err != nil {
		return nil, err
	}
	var known stateMap
	if sel.Delta {
		since, found, err := r.snapshotAt(ctx, room.nid, sel.Since, false)
		if err != nil {
			return nil, err
		}
		if found && since != snapshot {
			if known, err = r.snapshots.state(ctx, since); err != nil {
				return nil, err
			}
		} else if found {
			known = state
		}
	}
	if sel.Keep == nil && !sel.Delta {
		return r.stateEvents(ctx, room, state, nil)
	}
	return r.selectedEvents(ctx, room, state, func(k stateKey, nid int64) bool {
		changed := true
		if sel.Delta {
			old, ok := known[k]
			changed = !ok || old != nid
		}
		if sel.Keep == nil {
			return changed
		}
		return sel.Keep(k.Type, k.StateKey, changed)
	})
}

// currentState returns the room's current state as a map.
func (r *reader) currentState(ctx context.Context, room roomInfo) (stateMap, error) {
	var snapshot int64
	if err := r.db.QueryRowContext(ctx, `SELECT snapshot_nid FROM rs_rooms WHERE room_nid = $1`, room.nid).Scan(&snapshot); err != nil {
		return nil, fmt.Errorf("current state of %s: %w", room.id, err)
	}
	return r.snapshots.state(ctx, snapshot)
}

// stateEvents loads the events of a state in client form, sorted by
// (type, state_key); keep, if set, selects the keys to load.
func (r *reader) stateEvents(ctx context.Context, room roomInfo, state stateMap, keep func(stateKey) bool) ([]ClientEvent, error) {
	if keep == nil {
		return r.selectedEvents(ctx, room, state, nil)
	}
	return r.selectedEvents(ctx, room, state, func(k stateKey, _ int64) bool { return keep(k) })
}

// selectedEvents is stateEvents with keep also given each entry's event
// nid.
func (r *reader) selectedEvents(ctx context.Context, room roomInfo, state stateMap, keep func(stateKey, int64) bool) ([]ClientEvent, error) {
	nids := make([]int64, 0, len(state))
	for k, nid := range state {
		if keep == nil || keep(k, nid) {
			nids = append(nids, nid)
		}
	}
	stored, err := r.eventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	out := make([]ClientEvent, 0, len(stored))
	for i := range stored {
		ce, err := stored[i].clientEvent(room)
		if err != nil {
			return nil, err
		}
		out = append(out, ce)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return *out[i].StateKey < *out[j].StateKey
	})
	return out, nil
}

// aliasRoom resolves a local alias ("" when unknown).
func (r *reader) aliasRoom(ctx context.Context, alias string) (string, error) {
	var roomID string
	err := r.db.QueryRowContext(ctx, `SELECT room_id FROM rs_aliases WHERE alias = $1`, alias).Scan(&roomID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("resolve alias %s: %w", alias, err)
	}
	return roomID, nil
}

// txnEvent is the event a transaction already sent ("" if none).
func (r *reader) txnEvent(ctx context.Context, sender, deviceID, txnID string) (string, error) {
	var eventID string
	err := r.db.QueryRowContext(ctx, `SELECT event_id FROM rs_txns WHERE sender = $1 AND device_id = $2 AND txn_id = $3`,
		sender, deviceID, txnID).Scan(&eventID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up transaction %s: %w", txnID, err)
	}
	return eventID, nil
}
