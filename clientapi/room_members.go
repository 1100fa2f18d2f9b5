package clientapi

import (
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
)

// Member lists, forgetting and knocking.

func (c *ClientAPI) joinedRooms(req *httputil.Request) (any, error) {
	resp, err := roomserver.QueryRoomsOfUser.Call(req.Context(), c.bus, &roomserver.QueryRoomsOfUserRequest{
		UserID: req.Device.UserID, Memberships: []string{roomserver.MembershipJoin},
	})
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(resp.Rooms))
	for _, r := range resp.Rooms {
		ids = append(ids, r.RoomID)
	}
	return map[string][]string{"joined_rooms": ids}, nil
}

func (c *ClientAPI) joinedMembers(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	return roomserver.QueryJoinedMembers.Call(req.Context(), c.bus, &roomserver.RoomRequest{UserID: req.Device.UserID, RoomID: roomID})
}

func validMembership(m string) bool {
	switch m {
	case roomserver.MembershipJoin, roomserver.MembershipInvite, roomserver.MembershipLeave,
		roomserver.MembershipBan, roomserver.MembershipKnock:
		return true
	}
	return false
}

func (c *ClientAPI) members(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	q := req.URL.Query()
	r := &roomserver.QueryMembersRequest{UserID: req.Device.UserID, RoomID: roomID,
		Membership: q.Get("membership"), NotMembership: q.Get("not_membership")}
	for name, v := range map[string]string{"membership": r.Membership, "not_membership": r.NotMembership} {
		if v != "" && !validMembership(v) {
			return nil, mxerr.InvalidParam("%s: unknown membership %q", name, v)
		}
	}
	if r.At, err = parsePosToken("at", "s", q.Get("at")); err != nil {
		return nil, err
	}
	return roomserver.QueryMembers.Call(req.Context(), c.bus, r)
}

func (c *ClientAPI) forget(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	if _, err := roomserver.Forget.Call(req.Context(), c.bus, &roomserver.RoomRequest{UserID: req.Device.UserID, RoomID: roomID}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (c *ClientAPI) knock(req *httputil.Request) (any, error) {
	target := req.PathValue("roomIdOrAlias")
	if !mxid.RoomID(target) && !mxid.RoomAlias(target) {
		return nil, mxerr.InvalidParam("%q is not a room ID or alias", target)
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if len(body.Reason) > 1024 {
		return nil, mxerr.InvalidParam("reason is longer than 1024 bytes")
	}
	via := append(req.URL.Query()["via"], req.URL.Query()["server_name"]...)
	profile := c.profileOf(req, req.Device.UserID)
	resp, err := roomserver.Membership.Call(req.Context(), c.bus, &roomserver.MembershipRequest{
		Sender: req.Device.UserID, Target: req.Device.UserID, RoomID: target,
		Membership: roomserver.MembershipKnock, Reason: body.Reason, Via: via,
		DisplayName: profile.DisplayName, AvatarURL: profile.AvatarURL,
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"room_id": resp.RoomID}, nil
}
