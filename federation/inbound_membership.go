package federation

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
	"github.com/chappe-matrix/chappe/userapi"
)

// Memberships of the handshakes.
const (
	membershipJoin   = "join"
	membershipLeave  = "leave"
	membershipKnock  = "knock"
	membershipInvite = "invite"
)

// strippedStateTypes are the state events shown to a knocking or invited
// user who cannot see the room yet (the client-server spec's list).
var strippedStateTypes = []string{
	"m.room.create", "m.room.name", "m.room.avatar", "m.room.topic",
	"m.room.join_rules", "m.room.canonical_alias", "m.room.encryption",
}

func incompatibleVersion(version string) *mxerr.Error {
	e := mxerr.New(http.StatusBadRequest, "M_INCOMPATIBLE_ROOM_VERSION", "room version %q is not supported", version)
	e.Extra = map[string]any{"room_version": version}
	return e
}

// makeMembership serves make_join, make_leave and make_knock: a template
// of the membership event built on the room's current head, for the
// asking server to complete and sign. versions are the room versions it
// supports (nil: any).
func (f *Federation) makeMembership(r *InboundRequest, membership string, versions []string) (any, error) {
	ctx := r.HTTP.Context()
	roomID, userID := r.HTTP.PathValue("roomId"), r.HTTP.PathValue("userId")
	if err := ownedBy(userID, r.Origin); err != nil {
		return nil, err
	}
	if err := f.checkServerACL(ctx, roomID, r.Origin); err != nil {
		return nil, err
	}
	content, _ := json.Marshal(map[string]string{"membership": membership})
	built, err := roomserver.BuildEvent.Call(ctx, f.bus, &roomserver.BuildEventRequest{
		RoomID: roomID, Type: "m.room.member", StateKey: &userID, Sender: userID,
		Content: content, SupportedVersions: versions,
	})
	if err != nil {
		return nil, err
	}
	var template map[string]any
	if err := json.Unmarshal(built.Event, &template); err != nil {
		return nil, mxerr.Unknown("event template: %v", err)
	}
	template["origin"] = f.serverName
	template["origin_server_ts"] = time.Now().UnixMilli()
	return map[string]any{"room_version": built.RoomVersion, "event": template}, nil
}

func (f *Federation) onMakeJoin(r *InboundRequest) (any, error) {
	versions := r.HTTP.URL.Query()["ver"]
	if len(versions) == 0 {
		versions = []string{"1"} // the spec's default
	}
	return f.makeMembership(r, membershipJoin, versions)
}

func (f *Federation) onMakeLeave(r *InboundRequest) (any, error) {
	return f.makeMembership(r, membershipLeave, nil)
}

func (f *Federation) onMakeKnock(r *InboundRequest) (any, error) {
	versions := r.HTTP.URL.Query()["ver"]
	if len(versions) == 0 {
		return nil, mxerr.MissingParam("ver is required")
	}
	return f.makeMembership(r, membershipKnock, versions)
}

// sendMembership checks a signed membership event of a user of origin
// (send_join, send_leave, send_knock), adds this server's signature and
// inputs it into the room. It returns the event as stored.
func (f *Federation) sendMembership(r *InboundRequest, membership string) (gomatrixserverlib.PDU, error) {
	ctx := r.HTTP.Context()
	roomID := r.HTTP.PathValue("roomId")
	version, ok, err := f.reader.RoomVersion(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.NotFound("room %s is unknown here", roomID)
	}
	if err := f.checkServerACL(ctx, roomID, r.Origin); err != nil {
		return nil, err
	}
	ev, err := f.checkMembershipEvent(ctx, r, version, r.Body, membership)
	if err != nil {
		return nil, err
	}
	if ev.SenderID() != spec.SenderID(*ev.StateKey()) {
		return nil, mxerr.BadJSON("a %s is sent by its own user", membership)
	}
	res, err := f.inputNew(ctx, roomID, r.Origin, ev, nil)
	if err != nil {
		return nil, err
	}
	switch res.Status {
	case roomserver.InputAccepted:
		// The other servers in the room hear of it from us.
		if err := f.broadcastPDU(ctx, roomID, ev.EventID(), ev.JSON(), res.Pos, r.Origin); err != nil {
			f.log.Warn("could not queue a membership for the room's servers", "event", ev.EventID(), "err", err)
		}
		return ev, nil
	case roomserver.InputDuplicate:
		return ev, nil
	case roomserver.InputMissing:
		return nil, mxerr.BadJSON("the prev_events or auth_events of %s are unknown here", ev.EventID())
	default:
		return nil, mxerr.Forbidden("%s is not allowed: %s", membership, res.Reason)
	}
}

// checkMembershipEvent verifies a membership event received in a request
// body: its ID is the path's, its room the path's, of the right
// membership, sent by a user of origin, and signed. It returns it with
// this server's signature added: an invite needs the invitee's server's,
// a restricted join names a user of ours and needs ours.
func (f *Federation) checkMembershipEvent(ctx context.Context, r *InboundRequest, version string, raw []byte, membership string) (gomatrixserverlib.PDU, error) {
	roomID, eventID := r.HTTP.PathValue("roomId"), r.HTTP.PathValue("eventId")
	ev, err := parsePDU(version, raw)
	if err != nil {
		return nil, err
	}
	if ev.EventID() != eventID {
		return nil, mxerr.BadJSON("the event's ID is %s, not %s", ev.EventID(), eventID)
	}
	if ev.RoomID().String() != roomID {
		return nil, mxerr.BadJSON("the event is not in room %s", roomID)
	}
	if ev.Type() != "m.room.member" || ev.StateKey() == nil {
		return nil, mxerr.BadJSON("the event is not a membership event")
	}
	if m, err := ev.Membership(); err != nil || m != membership {
		return nil, mxerr.BadJSON("the event's membership is not %s", membership)
	}
	if err := ownedBy(string(ev.SenderID()), r.Origin); err != nil {
		return nil, err
	}
	ev = ev.Sign(f.serverName, gomatrixserverlib.KeyID(f.key.ID), f.key.Private)
	if err := f.verifySignatures(ctx, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

func (f *Federation) onSendJoin(r *InboundRequest) (any, error) {
	ev, err := f.sendMembership(r, membershipJoin)
	if err != nil {
		return nil, err
	}
	ctx := r.HTTP.Context()
	roomID := ev.RoomID().String()
	state, chain, err := f.reader.StateBefore(ctx, roomID, ev.EventID())
	if err != nil {
		return nil, err
	}
	stateEvs, err := f.eventsByIDs(ctx, state)
	if err != nil {
		return nil, err
	}
	chainEvs, err := f.eventsByIDs(ctx, chain)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"origin":          f.serverName,
		"state":           stateEvs,
		"auth_chain":      chainEvs,
		"event":           json.RawMessage(ev.JSON()),
		"members_omitted": false,
	}, nil
}

func (f *Federation) onSendLeave(r *InboundRequest) (any, error) {
	if _, err := f.sendMembership(r, membershipLeave); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (f *Federation) onSendKnock(r *InboundRequest) (any, error) {
	ev, err := f.sendMembership(r, membershipKnock)
	if err != nil {
		return nil, err
	}
	state, err := f.strippedState(r.HTTP.Context(), ev.RoomID().String())
	if err != nil {
		return nil, err
	}
	return map[string]any{"knock_room_state": state}, nil
}

// strippedState is the room's current state of strippedStateTypes, as
// full events (the format the spec asks since v1.16).
func (f *Federation) strippedState(ctx context.Context, roomID string) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	for _, typ := range strippedStateTypes {
		ev, err := f.reader.CurrentState(ctx, roomID, typ, "")
		if err != nil {
			return nil, err
		}
		if ev != nil {
			out = append(out, ev.JSON)
		}
	}
	return out, nil
}

// onInvite serves invite v2: a user of origin invites a user of ours. The
// invite is countersigned and recorded so that /sync shows it.
func (f *Federation) onInvite(r *InboundRequest) (any, error) {
	var body struct {
		RoomVersion     string            `json:"room_version"`
		Event           json.RawMessage   `json:"event"`
		InviteRoomState []json.RawMessage `json:"invite_room_state"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	if body.RoomVersion == "" || len(body.Event) == 0 {
		return nil, mxerr.BadJSON("room_version and event are required")
	}
	if _, err := roomVersionImpl(body.RoomVersion); err != nil {
		return nil, incompatibleVersion(body.RoomVersion)
	}
	ev, err := f.receiveInvite(r, body.RoomVersion, body.Event, body.InviteRoomState)
	if err != nil {
		return nil, err
	}
	return map[string]any{"event": json.RawMessage(ev.JSON())}, nil
}

// onInviteV1 serves invite v1, which servers older than invite v2 send:
// the body is the invite event itself, its stripped state in
// unsigned.invite_room_state, and the answer the [200, {"event": ...}]
// array. The spec has receivers assume room version 1 or 2; others are
// refused (M_INCOMPATIBLE_ROOM_VERSION), as their events are of another
// format.
func (f *Federation) onInviteV1(r *InboundRequest) (any, error) {
	var body struct {
		Unsigned json.RawMessage `json:"unsigned"`
	}
	var unsigned struct {
		InviteRoomState []json.RawMessage `json:"invite_room_state"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	if len(body.Unsigned) > 0 {
		if err := json.Unmarshal(body.Unsigned, &unsigned); err != nil {
			return nil, mxerr.BadJSON("unsigned: %v", err)
		}
	}
	version, err := f.inviteV1Version(r.Context(), r.HTTP.PathValue("roomId"), unsigned.InviteRoomState)
	if err != nil {
		return nil, err
	}
	ev, err := f.receiveInvite(r, version, r.Body, unsigned.InviteRoomState)
	if err != nil {
		return nil, err
	}
	// Parsing dropped unsigned, which the answer gives back untouched.
	if len(body.Unsigned) > 0 {
		if ev, err = ev.SetUnsigned(body.Unsigned); err != nil {
			return nil, mxerr.BadJSON("unsigned: %v", err)
		}
	}
	return []any{http.StatusOK, map[string]any{"event": json.RawMessage(ev.JSON())}}, nil
}

// inviteV1Version is the room version of a v1 invite: the room's when it
// is known here, else the one the create event among the stripped state
// names ("1" when it names none, the create event's default).
// Versions past 2 are refused: v1 cannot carry them.
func (f *Federation) inviteV1Version(ctx context.Context, roomID string, state []json.RawMessage) (string, error) {
	version, known, err := f.reader.RoomVersion(ctx, roomID)
	if err != nil {
		return "", err
	}
	if !known {
		version = "1"
		for _, raw := range state {
			var ev struct {
				Type     string  `json:"type"`
				StateKey *string `json:"state_key"`
				Content  struct {
					RoomVersion string `json:"room_version"`
				} `json:"content"`
			}
			if json.Unmarshal(raw, &ev) == nil && ev.Type == "m.room.create" && ev.StateKey != nil && *ev.StateKey == "" &&
				ev.Content.RoomVersion != "" {
				version = ev.Content.RoomVersion
			}
		}
	}
	if version != "1" && version != "2" {
		return "", incompatibleVersion(version)
	}
	return version, nil
}

// receiveInvite checks an invite of a user of ours by a user of origin
// (either version of the endpoint), countersigns it and records it so
// that /sync shows it. It returns the event signed by both servers.
func (f *Federation) receiveInvite(r *InboundRequest, version string, event json.RawMessage, inviteRoomState []json.RawMessage) (gomatrixserverlib.PDU, error) {
	ctx := r.Context()
	roomID := r.HTTP.PathValue("roomId")
	if err := f.checkServerACL(ctx, roomID, r.Origin); err != nil {
		return nil, err
	}
	ev, err := f.checkMembershipEvent(ctx, r, version, event, membershipInvite)
	if err != nil {
		return nil, err
	}
	invitee := *ev.StateKey()
	if err := ownedBy(invitee, f.serverName); err != nil {
		return nil, mxerr.Forbidden("%s is not a user of this server", invitee)
	}
	if _, err := userapi.QueryProfile.Call(ctx, f.bus, &userapi.QueryProfileRequest{UserID: invitee}); err != nil {
		if me, ok := mxerr.As(err); ok && me.Code == "M_NOT_FOUND" {
			return nil, mxerr.Forbidden("%s does not exist", invitee)
		}
		return nil, err
	}
	if err := f.checkInviteRoomState(ctx, version, roomID, inviteRoomState); err != nil {
		return nil, err
	}
	if _, err := roomserver.StoreInvite.Call(ctx, f.bus, &roomserver.StoreInviteRequest{
		RoomVersion: version, Event: ev.JSON(), InviteRoomState: inviteRoomState,
	}); err != nil {
		return nil, err
	}
	return ev, nil
}

// checkInviteRoomState applies the spec's validation of invite_room_state
// to room versions past 11 (it is optional before, and older servers
// send stripped events): the create event is there, and every entry is a
// signed event of the room.
func (f *Federation) checkInviteRoomState(ctx context.Context, version, roomID string, state []json.RawMessage) error {
	switch version {
	case "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11":
		return nil
	}
	hasCreate := false
	for _, raw := range state {
		ev, err := f.verifyPDU(ctx, version, raw)
		if err != nil {
			return mxerr.InvalidParam("invite_room_state: %v", err)
		}
		if ev.RoomID().String() != roomID {
			return mxerr.InvalidParam("invite_room_state: %s is not in room %s", ev.EventID(), roomID)
		}
		if ev.Type() == "m.room.create" {
			hasCreate = true
		}
	}
	if !hasCreate {
		return mxerr.InvalidParam("invite_room_state has no m.room.create event")
	}
	return nil
}
