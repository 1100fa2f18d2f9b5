package roomserver

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// receivedRoomState is the room state another server sent with a local
// user's invite (or the answer to their knock), kept in the membership
// event's unsigned data, stripped, followed by the membership event
// itself. ok is false when the user's membership carries none: the room's
// own state is then what the user is shown.
func (r *reader) receivedRoomState(ctx context.Context, roomID, userID string) (stripped []json.RawMessage, ok bool, err error) {
	var data []byte
	err = r.db.QueryRowContext(ctx, `SELECT e.json FROM rs_membership m
		JOIN rs_rooms r ON r.room_nid = m.room_nid
		JOIN rs_events e ON e.event_nid = m.event_nid
		WHERE r.room_id = $1 AND m.user_id = $2 AND m.membership IN ('invite', 'knock')`, roomID, userID).Scan(&data)
	if isNoRows(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("membership of %s in %s: %w", userID, roomID, err)
	}
	var ev struct {
		strippedState
		StateKey *string `json:"state_key"`
		Unsigned struct {
			InviteRoomState []json.RawMessage `json:"invite_room_state"`
			KnockRoomState  []json.RawMessage `json:"knock_room_state"`
		} `json:"unsigned"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || ev.StateKey == nil {
		return nil, false, nil
	}
	received := ev.Unsigned.InviteRoomState
	if received == nil {
		received = ev.Unsigned.KnockRoomState
	}
	if received == nil {
		return nil, false, nil
	}
	ev.strippedState.StateKey = *ev.StateKey
	for _, raw := range received {
		// Entries may be whole PDUs (invite_room_state since v1.16):
		// clients get the four stripped fields.
		var s strippedState
		if json.Unmarshal(raw, &s) != nil || s.Type == "" || (s.Type == spec.MRoomMember && s.StateKey == userID) {
			continue
		}
		stripped = append(stripped, mustJSON(s))
	}
	return append(stripped, mustJSON(ev.strippedState)), true, nil
}
