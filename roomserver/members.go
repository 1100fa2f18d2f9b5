package roomserver

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Member lists and forgetting a room.

// readableUpTo is the last position of the room whose state userID may
// read: all of it while joined or when the room is world-readable, up to
// their departure for former members; M_FORBIDDEN for anyone else.
func (r *reader) readableUpTo(ctx context.Context, room roomInfo, userID string) (int64, error) {
	history, err := r.memberHistory(ctx, room.nid, userID)
	if err != nil {
		return 0, err
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
	if inRoom {
		return math.MaxInt64, nil
	}
	current, err := r.currentState(ctx, room)
	if err != nil {
		return 0, err
	}
	if vis, err := r.historyVisibility(ctx, room, current); err != nil || vis == "world_readable" {
		return math.MaxInt64, err
	}
	if leftAt == 0 {
		return 0, mxerr.Forbidden("%s is not in room %s", userID, room.id)
	}
	return leftAt, nil
}

// stateAtPos is the room's state just after position pos.
func (r *reader) stateAtPos(ctx context.Context, room roomInfo, pos int64) (stateMap, error) {
	if pos == math.MaxInt64 {
		return r.currentState(ctx, room)
	}
	_, _, after, found, err := r.eventAtOrBefore(ctx, room.nid, pos)
	if err != nil || !found {
		return stateMap{}, err
	}
	return r.snapshots.state(ctx, after)
}

func (rs *Roomserver) queryMembers(ctx context.Context, req *QueryMembersRequest) (*QueryMembersResponse, error) {
	room, err := rs.roomFor(ctx, req.RoomID, req.UserID)
	if err != nil {
		return nil, err
	}
	upTo, err := rs.reader.readableUpTo(ctx, room, req.UserID)
	if err != nil {
		return nil, err
	}
	if req.At > 0 {
		upTo = min(upTo, req.At)
	}
	state, err := rs.reader.stateAtPos(ctx, room, upTo)
	if err != nil {
		return nil, err
	}
	events, err := rs.reader.stateEvents(ctx, room, state, func(k stateKey) bool { return k.Type == spec.MRoomMember })
	if err != nil {
		return nil, err
	}
	out := make([]ClientEvent, 0, len(events))
	for _, ev := range events {
		m := membershipOfContent(ev.Content)
		if (req.Membership != "" && m != req.Membership) || (req.NotMembership != "" && m == req.NotMembership) {
			continue
		}
		out = append(out, ev)
	}
	return &QueryMembersResponse{Chunk: out}, nil
}

func membershipOfContent(content json.RawMessage) string {
	var c memberContent
	_ = json.Unmarshal(content, &c)
	return c.Membership
}

func (rs *Roomserver) queryJoinedMembers(ctx context.Context, req *RoomRequest) (*QueryJoinedMembersResponse, error) {
	room, err := rs.roomFor(ctx, req.RoomID, req.UserID)
	if err != nil {
		return nil, err
	}
	if err := rs.requireViewer(ctx, room, req.UserID); err != nil {
		return nil, err
	}
	state, err := rs.reader.currentState(ctx, room)
	if err != nil {
		return nil, err
	}
	events, err := rs.reader.stateEvents(ctx, room, state, func(k stateKey) bool { return k.Type == spec.MRoomMember })
	if err != nil {
		return nil, err
	}
	joined := map[string]JoinedMember{}
	for _, ev := range events {
		var c memberContent
		if json.Unmarshal(ev.Content, &c) != nil || c.Membership != spec.Join {
			continue
		}
		joined[*ev.StateKey] = JoinedMember{DisplayName: c.DisplayName, AvatarURL: c.AvatarURL}
	}
	return &QueryJoinedMembersResponse{Joined: joined}, nil
}

// forget records that a user who left a room forgot it. The record holds
// the position of their membership at that time: a later membership
// event (a new invite or join) means the room is remembered again.
func (rs *Roomserver) forget(ctx context.Context, req *RoomRequest) (*Empty, error) {
	room, ok, err := rs.reader.room(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.NotFound("%s has no membership in room %s", req.UserID, req.RoomID)
	}
	var membership string
	var pos int64
	err = rs.db.QueryRowContext(ctx, `SELECT membership, stream_pos FROM rs_membership WHERE room_nid = $1 AND user_id = $2`,
		room.nid, req.UserID).Scan(&membership, &pos)
	if err != nil {
		// sql.ErrNoRows included: never in the room.
		if isNoRows(err) {
			return nil, mxerr.NotFound("%s has no membership in room %s", req.UserID, req.RoomID)
		}
		return nil, fmt.Errorf("membership of %s: %w", req.UserID, err)
	}
	if membership != spec.Leave && membership != spec.Ban {
		return nil, mxerr.New(http.StatusBadRequest, "M_UNKNOWN", "%s has not left room %s", req.UserID, req.RoomID)
	}
	_, err = rs.db.ExecContext(ctx, `INSERT INTO rs_forgotten (user_id, room_id, membership_pos) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, room_id) DO UPDATE SET membership_pos = excluded.membership_pos`, req.UserID, room.id, pos)
	if err != nil {
		return nil, fmt.Errorf("forget room %s: %w", room.id, err)
	}
	return &Empty{}, nil
}

func (rs *Roomserver) queryForgotten(ctx context.Context, req *QueryForgottenRequest) (*QueryForgottenResponse, error) {
	out, err := sqlutil.Strings(ctx, rs.db, `SELECT f.room_id FROM rs_forgotten f
		JOIN rs_rooms r ON r.room_id = f.room_id
		JOIN rs_membership m ON m.room_nid = r.room_nid AND m.user_id = f.user_id
		WHERE f.user_id = $1 AND m.stream_pos = f.membership_pos ORDER BY f.room_id`, req.UserID)
	if err != nil {
		return nil, fmt.Errorf("forgotten rooms of %s: %w", req.UserID, err)
	}
	return &QueryForgottenResponse{RoomIDs: out}, nil
}
