package roomserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// membershipEvent is one of a user's membership events in a room.
type membershipEvent struct {
	pos        int64
	membership string
}

// memberHistory lists userID's membership events in a room, oldest first.
func (r *reader) memberHistory(ctx context.Context, roomNID int64, userID string) ([]membershipEvent, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT e.stream_pos, e.membership FROM rs_events e
		WHERE e.state_key = $1 AND e.membership IS NOT NULL AND e.room_nid = $2 AND `+timelineEvent+`
		ORDER BY e.stream_pos`, userID, roomNID)
	if err != nil {
		return nil, fmt.Errorf("membership history of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []membershipEvent
	for rows.Next() {
		var m membershipEvent
		if err := rows.Scan(&m.pos, &m.membership); err != nil {
			return nil, fmt.Errorf("scan membership: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// visibleState is the room state userID may read: the current state when
// they are joined or the room is world-readable, the state when they last
// left if they were once joined, M_FORBIDDEN otherwise.
func (r *reader) visibleState(ctx context.Context, room roomInfo, userID string) (stateMap, error) {
	history, err := r.memberHistory(ctx, room.nid, userID)
	if err != nil {
		return nil, err
	}
	var inRoom bool
	var leftAt int64
	for _, m := range history {
		switch {
		case m.membership == spec.Join:
			inRoom = true
		case inRoom:
			inRoom, leftAt = false, m.pos
		}
	}
	current, err := r.currentState(ctx, room)
	if err != nil {
		return nil, err
	}
	if inRoom {
		return current, nil
	}
	vis, err := r.historyVisibility(ctx, room, current)
	if err != nil {
		return nil, err
	}
	if vis == "world_readable" {
		return current, nil
	}
	if leftAt == 0 {
		return nil, mxerr.Forbidden("%s is not in room %s", userID, room.id)
	}
	_, _, after, _, err := r.eventAtOrBefore(ctx, room.nid, leftAt)
	if err != nil {
		return nil, err
	}
	return r.snapshots.state(ctx, after)
}

// canSee applies the spec's history visibility rules to one event: the
// visibility and the user's membership are taken around the event (the
// state before it, and after it for the user's own membership so that
// they see their own join and leave).
func (r *reader) canSee(ctx context.Context, room roomInfo, userID string, ev *storedEvent) (bool, error) {
	before, err := r.snapshots.state(ctx, ev.snapshotBefore)
	if err != nil {
		return false, err
	}
	after, err := r.snapshots.state(ctx, ev.snapshotAfter)
	if err != nil {
		return false, err
	}
	vis, err := r.historyVisibility(ctx, room, before)
	if err != nil {
		return false, err
	}
	if vis == "world_readable" {
		return true, nil
	}
	mBefore, err := r.membershipIn(ctx, before, userID)
	if err != nil {
		return false, err
	}
	mAfter, err := r.membershipIn(ctx, after, userID)
	if err != nil {
		return false, err
	}
	if mBefore == spec.Join || mAfter == spec.Join {
		return true, nil
	}
	if vis == "invited" && (mBefore == spec.Invite || mAfter == spec.Invite) {
		return true, nil
	}
	if vis != "shared" {
		return false, nil
	}
	// Shared history: visible to anyone who joined at any point since.
	history, err := r.memberHistory(ctx, room.nid, userID)
	if err != nil {
		return false, err
	}
	for _, m := range history {
		if m.pos > ev.pos && m.membership == spec.Join {
			return true, nil
		}
	}
	return false, nil
}

// membershipIn is userID's membership in a state ("" if none).
func (r *reader) membershipIn(ctx context.Context, state stateMap, userID string) (string, error) {
	nid := state[stateKey{spec.MRoomMember, userID}]
	if nid == 0 {
		return "", nil
	}
	var membership sql.NullString
	err := r.db.QueryRowContext(ctx, `SELECT membership FROM rs_events WHERE event_nid = $1`, nid).Scan(&membership)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("membership of %s: %w", userID, err)
	}
	return membership.String, nil
}
