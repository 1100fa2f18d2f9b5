package roomserver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// summaryTypes are the state events a room summary is made of.
var summaryTypes = []string{
	spec.MRoomCreate, spec.MRoomName, spec.MRoomTopic, "m.room.avatar", spec.MRoomCanonicalAlias,
	spec.MRoomJoinRules, spec.MRoomHistoryVisibility, "m.room.guest_access",
}

// summary describes a room from its current state, as the public room
// directory and the space hierarchy show it.
func (r *reader) summary(ctx context.Context, room roomInfo) (RoomSummary, error) {
	s := RoomSummary{RoomID: room.id}
	state, err := r.currentState(ctx, room)
	if err != nil {
		return s, err
	}
	events, err := r.stateEvents(ctx, room, state, func(k stateKey) bool {
		return k.StateKey == "" && slices.Contains(summaryTypes, k.Type)
	})
	if err != nil {
		return s, err
	}
	for _, ev := range events {
		var c struct {
			Name              string `json:"name"`
			Topic             string `json:"topic"`
			URL               string `json:"url"`
			Alias             string `json:"alias"`
			JoinRule          string `json:"join_rule"`
			HistoryVisibility string `json:"history_visibility"`
			GuestAccess       string `json:"guest_access"`
			Type              string `json:"type"`
		}
		if json.Unmarshal(ev.Content, &c) != nil {
			continue // a malformed event says nothing
		}
		switch ev.Type {
		case spec.MRoomCreate:
			s.RoomType = c.Type
		case spec.MRoomName:
			s.Name = c.Name
		case spec.MRoomTopic:
			s.Topic = c.Topic
		case "m.room.avatar":
			s.AvatarURL = c.URL
		case spec.MRoomCanonicalAlias:
			s.CanonicalAlias = c.Alias
		case spec.MRoomJoinRules:
			s.JoinRule = c.JoinRule
		case spec.MRoomHistoryVisibility:
			s.WorldReadable = c.HistoryVisibility == "world_readable"
		case "m.room.guest_access":
			s.GuestCanJoin = c.GuestAccess == "can_join"
		}
	}
	if s.JoinRule == "" {
		s.JoinRule = spec.Invite // the spec's default when there is no join rules event
	}
	if s.NumJoinedMembers, err = r.joinedCount(ctx, room.nid); err != nil {
		return s, err
	}
	return s, nil
}

func (r *reader) joinedCount(ctx context.Context, roomNID int64) (int, error) {
	var n int
	err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM rs_membership WHERE room_nid = $1 AND membership = 'join'`, roomNID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count joined members: %w", err)
	}
	return n, nil
}

// stateContent reads one current state event's content (nil when unset).
func (r *reader) stateContent(ctx context.Context, room roomInfo, eventType, key string) (json.RawMessage, error) {
	state, err := r.currentState(ctx, room)
	if err != nil {
		return nil, err
	}
	want := stateKey{eventType, key}
	if state[want] == 0 {
		return nil, nil
	}
	events, err := r.stateEvents(ctx, room, state, func(k stateKey) bool { return k == want })
	if err != nil || len(events) == 0 {
		return nil, err
	}
	return events[0].Content, nil
}
