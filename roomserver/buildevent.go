package roomserver

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// buildEvent answers another server's make_join, make_leave and
// make_knock: the membership event its user would send now, built on the
// room's head (prev_events, auth_events, depth) in the room's worker, so
// that it is consistent with what the worker builds next. The event is
// built and checked against the auth rules like a local one, then stripped
// of its event ID, hashes and signatures: the asking server completes and
// signs it. Nothing is stored.
func (rs *Roomserver) buildEvent(ctx context.Context, req *BuildEventRequest) (*BuildEventResponse, error) {
	membership, err := checkBuildRequest(req)
	if err != nil {
		return nil, err
	}
	room, ok, err := rs.reader.room(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.NotFound("room %s is unknown to this server", req.RoomID)
	}
	version := string(room.version.Version())
	if len(req.SupportedVersions) > 0 && !slices.Contains(req.SupportedVersions, version) {
		e := mxerr.New(http.StatusBadRequest, "M_INCOMPATIBLE_ROOM_VERSION",
			"room %s has version %s, which your server does not support", req.RoomID, version)
		e.Extra = map[string]any{"room_version": version}
		return nil, e
	}
	// Only a server joined to the room knows its current state.
	resident, err := rs.localJoined(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	if !resident {
		return nil, mxerr.NotFound("this server is not in room %s", req.RoomID)
	}
	resp, err := rs.queue.submit(ctx, req.RoomID, func(b *batch) (any, error) { return templateEvent(b, req, membership) })
	if err != nil {
		return nil, err
	}
	return &BuildEventResponse{RoomVersion: version, Event: resp.(json.RawMessage)}, nil
}

// checkBuildRequest accepts a user's own join, leave or knock and returns
// the membership.
func checkBuildRequest(req *BuildEventRequest) (string, error) {
	if err := checkUserID("sender", req.Sender); err != nil {
		return "", err
	}
	if req.Type != spec.MRoomMember || req.StateKey == nil || *req.StateKey != req.Sender {
		return "", mxerr.InvalidParam("only a user's own membership event can be built for another server")
	}
	var c struct {
		Membership string `json:"membership"`
	}
	if !isJSONObject(req.Content) || json.Unmarshal(req.Content, &c) != nil {
		return "", mxerr.BadJSON("event content must be a JSON object")
	}
	switch c.Membership {
	case spec.Join, spec.Leave, spec.Knock:
		return c.Membership, nil
	}
	return "", mxerr.InvalidParam("cannot build a %q membership for another server", c.Membership)
}

// templateEvent builds the event on the batch's head without adding it
// and returns it as a template.
func templateEvent(b *batch, req *BuildEventRequest, membership string) (any, error) {
	var content map[string]any
	if err := json.Unmarshal(req.Content, &content); err != nil {
		return nil, mxerr.BadJSON("event content: %v", err)
	}
	// This server chooses who authorises a restricted join, not the asker.
	delete(content, "join_authorised_via_users_server")
	if membership == spec.Leave {
		// The library lets a leave follow a leave; the spec does not.
		current, _, err := b.membership(req.Sender)
		if err != nil {
			return nil, err
		}
		if current != spec.Join && current != spec.Invite && current != spec.Knock {
			return nil, mxerr.Forbidden("%s is not in the room", req.Sender)
		}
	}
	if membership == spec.Join {
		via, err := remoteJoinAuthoriser(b, req.Sender)
		if err != nil {
			return nil, err
		}
		if via != "" {
			content["join_authorised_via_users_server"] = via
		}
	}
	p, err := b.build(eventSpec{Type: req.Type, StateKey: req.StateKey, Sender: req.Sender, Content: mustJSON(content)})
	if err != nil {
		return nil, err
	}
	return eventTemplate(p.pdu.JSON())
}

// eventTemplate strips a built event of what its sender's server
// recomputes when it signs it: the event ID (room versions 1 and 2), the
// hashes and the signatures.
func eventTemplate(pdu []byte) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(pdu, &fields); err != nil {
		return nil, mxerr.Unknown("cannot read the built event: %v", err)
	}
	for _, k := range []string{"event_id", "hashes", "signatures", "unsigned"} {
		delete(fields, k)
	}
	return json.Marshal(fields)
}

// remoteJoinAuthoriser is restrictedJoinAuthoriser for a user of another
// server, with the errors make_join needs: when the user is not invited
// and the room is restricted, this server vouches for the join only if it
// is in one of the allowed rooms and sees the user joined there.
func remoteJoinAuthoriser(b *batch, userID string) (string, error) {
	current, _, err := b.membership(userID)
	if err != nil || current == spec.Join || current == spec.Invite {
		return "", err // joining from an invite needs no authoriser
	}
	if b.head.version.CheckRestrictedJoinsAllowed() != nil {
		return "", nil // no restricted joins here: the auth rules decide
	}
	rule, err := joinRuleOf(b)
	if err != nil || (rule.JoinRule != spec.Restricted && rule.JoinRule != spec.KnockRestricted) {
		return "", err
	}
	resident := false
	for _, allow := range rule.Allow {
		if allow.Type != spec.MRoomMembership {
			continue
		}
		in, err := b.rs.localJoined(b.ctx, allow.RoomID)
		if err != nil {
			return "", err
		}
		if !in {
			continue // memberships there may be stale
		}
		resident = true
		m, err := b.rs.currentMembership(b.ctx, allow.RoomID, userID)
		if err != nil {
			return "", err
		}
		if m != spec.Join {
			continue
		}
		via, err := localInviter(b)
		if me, ok := mxerr.As(err); ok && me.Code == "M_FORBIDDEN" {
			return "", mxerr.New(http.StatusBadRequest, "M_UNABLE_TO_GRANT_JOIN",
				"no member of this server may invite to this room: try joining through another server")
		}
		return via, err
	}
	if !resident {
		return "", mxerr.New(http.StatusBadRequest, "M_UNABLE_TO_AUTHORISE_JOIN",
			"this server is in none of the rooms whose members may join this room")
	}
	return "", mxerr.Forbidden("%s is not in any of the rooms whose members may join this room", userID)
}

// joinRuleOf reads the room's join rules (an empty rule when unset or
// malformed: the auth rules then decide).
func joinRuleOf(b *batch) (gomatrixserverlib.JoinRuleContent, error) {
	var rule gomatrixserverlib.JoinRuleContent
	ev, err := b.stateEvent(stateKey{spec.MRoomJoinRules, ""})
	if err != nil || ev == nil {
		return rule, err
	}
	_ = json.Unmarshal(ev.Content(), &rule)
	return rule, nil
}
