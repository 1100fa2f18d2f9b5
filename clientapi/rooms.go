package clientapi

import (
	"encoding/json"
	"strings"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
	"github.com/chappe-matrix/chappe/userapi"
)

// Limits on /createRoom lists, so one request cannot build a huge room.
const (
	maxInvites      = 500
	maxInitialState = 100
)

type createRoomRequest struct {
	Visibility                string                  `json:"visibility"`
	RoomAliasName             string                  `json:"room_alias_name"`
	Name                      string                  `json:"name"`
	Topic                     string                  `json:"topic"`
	Invite                    []string                `json:"invite"`
	Invite3PID                []json.RawMessage       `json:"invite_3pid"`
	RoomVersion               string                  `json:"room_version"`
	CreationContent           json.RawMessage         `json:"creation_content"`
	InitialState              []roomserver.StateEvent `json:"initial_state"`
	Preset                    string                  `json:"preset"`
	IsDirect                  bool                    `json:"is_direct"`
	PowerLevelContentOverride json.RawMessage         `json:"power_level_content_override"`
}

func (c *ClientAPI) createRoom(req *httputil.Request) (any, error) {
	if err := refuseSuspended(req); err != nil { // misc_admin.go
		return nil, err
	}
	var body createRoomRequest
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if err := validateCreateRoom(&body); err != nil {
		return nil, err
	}
	profile := c.profileOf(req, req.Device.UserID)
	resp, err := roomserver.CreateRoom.Call(req.Context(), c.bus, &roomserver.CreateRoomRequest{
		Sender:                    req.Device.UserID,
		SenderDisplayName:         profile.DisplayName,
		SenderAvatarURL:           profile.AvatarURL,
		RoomVersion:               body.RoomVersion,
		Name:                      body.Name,
		Topic:                     body.Topic,
		Preset:                    body.Preset,
		Visibility:                body.Visibility,
		Invite:                    body.Invite,
		IsDirect:                  body.IsDirect,
		RoomAliasName:             body.RoomAliasName,
		CreationContent:           body.CreationContent,
		InitialState:              body.InitialState,
		PowerLevelContentOverride: body.PowerLevelContentOverride,
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"room_id": resp.RoomID}, nil
}

func validateCreateRoom(body *createRoomRequest) error {
	switch body.Visibility {
	case "", "public", "private":
	default:
		return mxerr.BadJSON("visibility must be public or private")
	}
	switch body.Preset {
	case "", "private_chat", "trusted_private_chat", "public_chat":
	default:
		return mxerr.BadJSON("unknown preset %q", body.Preset)
	}
	if len(body.Invite) > maxInvites {
		return mxerr.InvalidParam("at most %d invites", maxInvites)
	}
	for _, u := range body.Invite {
		if !mxid.UserID(u) {
			return mxerr.InvalidParam("%q is not a user ID", u)
		}
	}
	if len(body.Invite3PID) > 0 {
		return mxerr.New(400, "M_UNRECOGNIZED", "third-party invites are not supported")
	}
	if len(body.InitialState) > maxInitialState {
		return mxerr.InvalidParam("at most %d initial_state events", maxInitialState)
	}
	for _, ev := range body.InitialState {
		if ev.Type == "" {
			return mxerr.BadJSON("initial_state events need a type")
		}
		if !isJSONObject(ev.Content) {
			return mxerr.BadJSON("initial_state content of %s must be an object", ev.Type)
		}
	}
	for name, raw := range map[string]json.RawMessage{"creation_content": body.CreationContent, "power_level_content_override": body.PowerLevelContentOverride} {
		if len(raw) > 0 && string(raw) != "null" && !isJSONObject(raw) {
			return mxerr.BadJSON("%s must be an object", name)
		}
	}
	if strings.ContainsAny(body.RoomAliasName, ":# \t\n") {
		return mxerr.New(400, "M_INVALID_PARAM", "room_alias_name must be the local part only")
	}
	if len(body.Name) > 255 {
		return mxerr.InvalidParam("name is longer than 255 bytes")
	}
	return nil
}

func isJSONObject(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return len(s) >= 2 && s[0] == '{' && json.Valid(raw)
}

// profileOf reads the user's profile for their member events; a missing
// profile is not an error (the member event then carries no name).
func (c *ClientAPI) profileOf(req *httputil.Request, userID string) userapi.Profile {
	p, err := userapi.QueryProfile.Call(req.Context(), c.bus, &userapi.QueryProfileRequest{UserID: userID})
	if err != nil {
		if _, ok := mxerr.As(err); !ok {
			req.Log.Warn("profile lookup failed", "user", userID, "err", err)
		}
		return userapi.Profile{}
	}
	return *p
}

type membershipBody struct {
	UserID string `json:"user_id"`
	Reason string `json:"reason"`
}

func (c *ClientAPI) joinRoomIDOrAlias(req *httputil.Request) (any, error) {
	target := req.PathValue("roomIdOrAlias")
	if !mxid.RoomID(target) && !mxid.RoomAlias(target) {
		return nil, mxerr.InvalidParam("%q is not a room ID or alias", target)
	}
	via := append(req.URL.Query()["via"], req.URL.Query()["server_name"]...)
	return c.join(req, target, via)
}

func (c *ClientAPI) joinRoomByID(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	return c.join(req, roomID, nil)
}

func (c *ClientAPI) join(req *httputil.Request, roomIDOrAlias string, via []string) (any, error) {
	if err := refuseSuspended(req); err != nil {
		return nil, err
	}
	var body membershipBody
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	profile := c.profileOf(req, req.Device.UserID)
	resp, err := roomserver.Membership.Call(req.Context(), c.bus, &roomserver.MembershipRequest{
		Sender: req.Device.UserID, Target: req.Device.UserID, RoomID: roomIDOrAlias,
		Membership: roomserver.MembershipJoin, Reason: body.Reason, Via: via,
		DisplayName: profile.DisplayName, AvatarURL: profile.AvatarURL,
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"room_id": resp.RoomID}, nil
}

func (c *ClientAPI) leave(req *httputil.Request) (any, error) {
	return c.membership(req, roomserver.MembershipLeave, false)
}
func (c *ClientAPI) invite(req *httputil.Request) (any, error) {
	return c.membership(req, roomserver.MembershipInvite, true)
}
func (c *ClientAPI) kick(req *httputil.Request) (any, error) {
	return c.membership(req, roomserver.MembershipLeave, true)
}
func (c *ClientAPI) ban(req *httputil.Request) (any, error) {
	return c.membership(req, roomserver.MembershipBan, true)
}
func (c *ClientAPI) unban(req *httputil.Request) (any, error) {
	return c.membership(req, roomserver.MembershipLeave, true)
}

// membership sends a membership change. withTarget says the body names the
// target user (invite, kick, ban, unban); leave targets the sender.
func (c *ClientAPI) membership(req *httputil.Request, membership string, withTarget bool) (any, error) {
	// A suspended user may still leave and reject invites, nothing else.
	if withTarget {
		if err := refuseSuspended(req); err != nil {
			return nil, err
		}
	}
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	var body membershipBody
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	target := req.Device.UserID
	if withTarget {
		if body.UserID == "" {
			return nil, mxerr.MissingParam("user_id is required")
		}
		if !mxid.UserID(body.UserID) {
			return nil, mxerr.InvalidParam("%q is not a user ID", body.UserID)
		}
		target = body.UserID
	}
	if len(body.Reason) > 1024 {
		return nil, mxerr.InvalidParam("reason is longer than 1024 bytes")
	}
	mreq := &roomserver.MembershipRequest{
		Sender: req.Device.UserID, Target: target, RoomID: roomID,
		Membership: membership, Reason: body.Reason,
	}
	if membership == roomserver.MembershipInvite {
		p := c.profileOf(req, target)
		mreq.DisplayName, mreq.AvatarURL = p.DisplayName, p.AvatarURL
	}
	if _, err := roomserver.Membership.Call(req.Context(), c.bus, mreq); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func roomIDParam(req *httputil.Request) (string, error) {
	roomID := req.PathValue("roomId")
	if !mxid.RoomID(roomID) {
		return "", mxerr.InvalidParam("%q is not a room ID", roomID)
	}
	return roomID, nil
}
