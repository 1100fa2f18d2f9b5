package clientapi

import (
	"context"
	"encoding/json"
	"time"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/roomserver"
	"github.com/chappe-matrix/chappe/userapi"
)

// propagateTimeout bounds the member-event updates of one profile change.
const propagateTimeout = 2 * time.Minute

// propagateProfile sends a new m.room.member event, with the new display
// name and avatar, in every room the user has joined. The rest of the
// member content (is_direct, reason...) is kept. A room that refuses is
// logged and skipped: the profile itself has changed, and the next change
// will try again. It outlives a client that hangs up: rooms should not
// be left half-updated.
func (c *ClientAPI) propagateProfile(req *httputil.Request, p userapi.Profile) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), propagateTimeout)
	defer cancel()
	userID := req.Device.UserID
	rooms, err := roomserver.QueryRoomsOfUser.Call(ctx, c.bus, &roomserver.QueryRoomsOfUserRequest{
		UserID: userID, Memberships: []string{roomserver.MembershipJoin},
	})
	if err != nil {
		req.Log.Warn("profile change not sent to rooms", "err", err)
		return
	}
	for _, room := range rooms.Rooms {
		if err := c.sendMemberProfile(ctx, userID, room.RoomID, p); err != nil {
			req.Log.Warn("profile change not sent to room", "room_id", room.RoomID, "err", err)
		}
	}
}

func (c *ClientAPI) sendMemberProfile(ctx context.Context, userID, roomID string, p userapi.Profile) error {
	stateKey := userID
	content := map[string]any{}
	state, err := roomserver.QueryState.Call(ctx, c.bus, &roomserver.QueryStateRequest{
		UserID: userID, RoomID: roomID, Type: "m.room.member", StateKey: &stateKey,
	})
	if err != nil {
		return err
	}
	if len(state.Events) > 0 {
		_ = json.Unmarshal(state.Events[0].Content, &content) // a bad old content is simply replaced
	}
	if content["membership"] != roomserver.MembershipJoin {
		return nil // left since the query
	}
	setOrDelete(content, "displayname", p.DisplayName)
	setOrDelete(content, "avatar_url", p.AvatarURL)
	data, err := json.Marshal(content)
	if err != nil {
		return err
	}
	_, err = roomserver.SendEvent.Call(ctx, c.bus, &roomserver.SendEventRequest{
		Sender: userID, RoomID: roomID, Type: "m.room.member", StateKey: &stateKey, Content: data,
	})
	return err
}

func setOrDelete(m map[string]any, key, value string) {
	if value == "" {
		delete(m, key)
		return
	}
	m[key] = value
}
