package roomserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// The EventReader's membership queries.

func (r *reader) RoomsOfUser(ctx context.Context, userID string, memberships ...string) ([]MembershipChange, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT r.room_id, m.membership, m.stream_pos, e.event_id
		FROM rs_membership m
		JOIN rs_rooms r ON r.room_nid = m.room_nid
		JOIN rs_events e ON e.event_nid = m.event_nid
		WHERE m.user_id = $1 ORDER BY m.stream_pos`, userID)
	if err != nil {
		return nil, fmt.Errorf("rooms of %s: %w", userID, err)
	}
	changes, err := scanMembershipChanges(rows)
	if err != nil || len(memberships) == 0 {
		return changes, err
	}
	return slices.DeleteFunc(changes, func(c MembershipChange) bool { return !slices.Contains(memberships, c.Membership) }), nil
}

func (r *reader) MembershipChanges(ctx context.Context, userID string, from, to int64) ([]MembershipChange, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT r.room_id, e.membership, e.stream_pos, e.event_id
		FROM rs_events e JOIN rs_rooms r ON r.room_nid = e.room_nid
		WHERE e.state_key = $1 AND e.membership IS NOT NULL AND e.stream_pos > $2 AND e.stream_pos <= $3
			AND e.stream_pos > 0 AND e.rejected = FALSE AND e.soft_failed = FALSE
		ORDER BY e.stream_pos`, userID, from, to)
	if err != nil {
		return nil, fmt.Errorf("membership changes of %s: %w", userID, err)
	}
	return scanMembershipChanges(rows)
}

func scanMembershipChanges(rows *sql.Rows) ([]MembershipChange, error) {
	defer rows.Close()
	var out []MembershipChange
	for rows.Next() {
		var c MembershipChange
		if err := rows.Scan(&c.RoomID, &c.Membership, &c.Pos, &c.EventID); err != nil {
			return nil, fmt.Errorf("scan membership: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (r *reader) MembershipAt(ctx context.Context, roomID, userID string, pos int64) (string, error) {
	room, ok, err := r.room(ctx, roomID)
	if err != nil || !ok {
		return "", err
	}
	_, _, after, found, err := r.eventAtOrBefore(ctx, room.nid, pos)
	if err != nil || !found {
		return "", err
	}
	state, err := r.snapshots.state(ctx, after)
	if err != nil {
		return "", err
	}
	return r.membershipIn(ctx, state, userID)
}

func (r *reader) JoinedUsers(ctx context.Context, roomID string) ([]string, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT m.user_id FROM rs_membership m JOIN rs_rooms r ON r.room_nid = m.room_nid
		WHERE r.room_id = $1 AND m.membership = 'join' ORDER BY m.user_id`, roomID)
	if err != nil {
		return nil, fmt.Errorf("joined users of %s: %w", roomID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("scan joined user: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func (r *reader) RoomMates(ctx context.Context, userID string) ([]string, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT DISTINCT o.user_id FROM rs_membership m
		JOIN rs_membership o ON o.room_nid = m.room_nid
		WHERE m.user_id = $1 AND m.membership = 'join' AND o.membership = 'join'`, userID)
	if err != nil {
		return nil, fmt.Errorf("room mates of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("scan room mate: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// inviteStateTypes are the state events shown with an invite.
var inviteStateTypes = []string{
	spec.MRoomCreate, spec.MRoomJoinRules, spec.MRoomName, "m.room.avatar",
	spec.MRoomCanonicalAlias, "m.room.encryption", spec.MRoomTopic,
}

func (r *reader) InviteState(ctx context.Context, roomID, userID string) ([]json.RawMessage, error) {
	if received, ok, err := r.receivedRoomState(ctx, roomID, userID); err != nil || ok { // reader_invites.go
		return received, err
	}
	room, ok, err := r.room(ctx, roomID)
	if err != nil || !ok {
		return nil, err
	}
	state, err := r.currentState(ctx, room)
	if err != nil {
		return nil, err
	}
	events, err := r.stateEvents(ctx, room, state, func(k stateKey) bool {
		return (k.StateKey == "" && slices.Contains(inviteStateTypes, k.Type)) ||
			(k.Type == spec.MRoomMember && k.StateKey == userID)
	})
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, 0, len(events))
	for _, ev := range events {
		data, err := json.Marshal(strippedState{Type: ev.Type, StateKey: *ev.StateKey, Content: ev.Content, Sender: ev.Sender})
		if err != nil {
			return nil, fmt.Errorf("encode stripped state: %w", err)
		}
		out = append(out, data)
	}
	return out, nil
}
