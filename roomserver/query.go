package roomserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// queryState returns the state req.UserID may see: the current state for
// members (and anyone in a world-readable room), the state at their
// departure for former members.
func (rs *Roomserver) queryState(ctx context.Context, req *QueryStateRequest) (*QueryStateResponse, error) {
	room, err := rs.roomFor(ctx, req.RoomID, req.UserID)
	if err != nil {
		return nil, err
	}
	state, err := rs.reader.visibleState(ctx, room, req.UserID)
	if err != nil {
		return nil, err
	}
	var keep func(stateKey) bool
	if req.Type != "" {
		want := stateKey{Type: req.Type}
		if req.StateKey != nil {
			want.StateKey = *req.StateKey
		}
		if state[want] == 0 {
			return nil, mxerr.NotFound("no %s state event with state key %q in this room", want.Type, want.StateKey)
		}
		keep = func(k stateKey) bool { return k == want }
	}
	events, err := rs.reader.stateEvents(ctx, room, state, keep)
	if err != nil {
		return nil, err
	}
	return &QueryStateResponse{Events: events}, nil
}

// queryEvent returns one event if req.UserID may see it. An event they
// may not see is reported as not found, as the spec asks, so its
// existence does not leak.
func (rs *Roomserver) queryEvent(ctx context.Context, req *QueryEventRequest) (*QueryEventResponse, error) {
	room, err := rs.knownRoom(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	rows, err := rs.db.QueryContext(ctx, eventSelect+`WHERE e.event_id = $1 AND e.room_nid = $2 AND `+timelineEvent,
		req.EventID, room.nid)
	if err != nil {
		return nil, err
	}
	stored, err := scanEvents(rows)
	if err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		return nil, mxerr.NotFound("event %s not found", req.EventID)
	}
	visible, err := rs.reader.canSee(ctx, room, req.UserID, &stored[0])
	if err != nil {
		return nil, err
	}
	if !visible {
		return nil, mxerr.NotFound("event %s not found or not visible to you", req.EventID)
	}
	ev, err := stored[0].clientEvent(room)
	if err != nil {
		return nil, err
	}
	if err := rs.reader.bundle(ctx, room, req.UserID, []*ClientEvent{&ev}); err != nil {
		return nil, err
	}
	return &QueryEventResponse{Event: ev, Pos: stored[0].pos}, nil
}

func (rs *Roomserver) resolveAlias(ctx context.Context, req *ResolveAliasRequest) (*ResolveAliasResponse, error) {
	if !strings.HasPrefix(req.Alias, "#") || domainOf(req.Alias) == "" {
		return nil, mxerr.InvalidParam("%q is not a room alias", req.Alias)
	}
	if domainOf(req.Alias) != rs.serverName {
		return rs.remoteAlias(ctx, req.Alias) // membership_remote.go
	}
	roomID, err := rs.reader.aliasRoom(ctx, req.Alias)
	if err != nil {
		return nil, err
	}
	if roomID == "" {
		return nil, mxerr.NotFound("room alias %s not found", req.Alias)
	}
	return &ResolveAliasResponse{RoomID: roomID, Servers: []string{rs.serverName}}, nil
}

// knownRoom looks a room up by ID, M_NOT_FOUND when unknown.
func (rs *Roomserver) knownRoom(ctx context.Context, roomID string) (roomInfo, error) {
	room, ok, err := rs.reader.room(ctx, roomID)
	if err != nil {
		return room, err
	}
	if !ok {
		return room, mxerr.NotFound("room %s not found", roomID)
	}
	return room, nil
}

// historyVisibility of a state ("shared" when unset, as the spec says).
func (r *reader) historyVisibility(ctx context.Context, room roomInfo, state stateMap) (string, error) {
	nid := state[stateKey{spec.MRoomHistoryVisibility, ""}]
	if nid == 0 {
		return "shared", nil
	}
	events, err := r.stateEvents(ctx, room, stateMap{{spec.MRoomHistoryVisibility, ""}: nid}, nil)
	if err != nil || len(events) == 0 {
		return "shared", err
	}
	var c struct {
		HistoryVisibility string `json:"history_visibility"`
	}
	if err := json.Unmarshal(events[0].Content, &c); err != nil || c.HistoryVisibility == "" {
		return "shared", nil
	}
	return c.HistoryVisibility, nil
}

func (rs *Roomserver) queryRoomsOfUser(ctx context.Context, req *QueryRoomsOfUserRequest) (*QueryRoomsOfUserResponse, error) {
	if req.UserID == "" {
		return nil, mxerr.MissingParam("user_id is required")
	}
	memberships := req.Memberships
	if len(memberships) == 0 {
		memberships = []string{MembershipJoin, MembershipInvite, MembershipLeave, MembershipBan, MembershipKnock}
	}
	rooms, err := rs.reader.RoomsOfUser(ctx, req.UserID, memberships...)
	if err != nil {
		return nil, fmt.Errorf("rooms of %s: %w", req.UserID, err)
	}
	if rooms == nil {
		rooms = []MembershipChange{}
	}
	return &QueryRoomsOfUserResponse{Rooms: rooms}, nil
}
