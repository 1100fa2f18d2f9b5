package roomserver

import (
	"context"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// membership changes a user's membership: join, invite, leave (and so
// kick, unban, rejecting an invite), ban, knock.
func (rs *Roomserver) membership(ctx context.Context, req *MembershipRequest) (*MembershipResponse, error) {
	if req.Target == "" {
		req.Target = req.Sender
	}
	if err := checkUserID("sender", req.Sender); err != nil {
		return nil, err
	}
	if err := checkUserID("target", req.Target); err != nil {
		return nil, err
	}
	switch req.Membership {
	case MembershipJoin, MembershipInvite, MembershipLeave, MembershipBan, MembershipKnock:
	default:
		return nil, mxerr.InvalidParam("unknown membership %q", req.Membership)
	}
	roomID, servers, err := rs.locateRoom(ctx, req) // membership_remote.go
	if err != nil {
		return nil, err
	}
	if servers != nil {
		return rs.remoteMembership(ctx, req, roomID, servers)
	}
	if req.TxnID != "" {
		if id, err := rs.txnEvent(ctx, req.Sender, req.DeviceID, req.TxnID); err != nil || id != "" {
			return &MembershipResponse{RoomID: roomID, EventID: id}, err
		}
	}
	if req.Membership == MembershipInvite && domainOf(req.Target) != rs.serverName {
		return rs.inviteRemote(ctx, req, roomID)
	}
	resp, err := rs.queue.submit(ctx, roomID, func(b *batch) (any, error) { return applyMembership(b, req) })
	if err != nil {
		return nil, err
	}
	return resp.(*MembershipResponse), nil
}

// resolveRoom turns a room ID or alias into the ID of a room this server
// knows.
func (rs *Roomserver) resolveRoom(ctx context.Context, idOrAlias string) (string, error) {
	roomID, _, err := rs.roomOf(ctx, idOrAlias)
	if err != nil {
		return "", err
	}
	if _, err := rs.knownRoom(ctx, roomID); err != nil {
		return "", err
	}
	return roomID, nil
}

func errFederation(what string) error {
	return mxerr.NotFound("%s is on another server: federation not yet supported", what)
}

// applyMembership checks a membership change against the room's current
// state, with messages clearer than the auth rules', and builds it.
func applyMembership(b *batch, req *MembershipRequest) (any, error) {
	resp := func(eventID string) (any, error) {
		return &MembershipResponse{RoomID: b.head.id, EventID: eventID}, nil
	}
	if id, ok := b.sentTxn(req.Sender, req.DeviceID, req.TxnID); ok {
		return resp(id)
	}
	sender, target := req.Sender, req.Target
	current, currentEv, err := b.membership(target)
	if err != nil {
		return nil, err
	}
	content := memberContent{Membership: req.Membership, Reason: req.Reason}
	switch req.Membership {
	case MembershipJoin, MembershipKnock:
		if target != sender {
			return nil, mxerr.Forbidden("cannot %s on behalf of another user", req.Membership)
		}
		if current == spec.Ban {
			return nil, mxerr.Forbidden("%s is banned from the room", target)
		}
		if req.Membership == MembershipKnock && current == spec.Join {
			return nil, mxerr.Forbidden("%s is already in the room", target)
		}
		content.DisplayName, content.AvatarURL = req.DisplayName, req.AvatarURL
		if req.Membership == MembershipJoin && current == spec.Join && sameProfile(currentEv, req) {
			return resp(currentEv.EventID())
		}
		if req.Membership == MembershipJoin && current != spec.Join && current != spec.Invite {
			if content.AuthorisedVia, err = restrictedJoinAuthoriser(b, target); err != nil {
				return nil, err
			}
		}
	case MembershipInvite:
		if err := checkCanInvite(b, sender, target, current); err != nil {
			return nil, err
		}
		content.DisplayName, content.AvatarURL, content.IsDirect = req.DisplayName, req.AvatarURL, req.IsDirect
	case MembershipLeave:
		if target == sender {
			switch current {
			case "":
				return nil, mxerr.Forbidden("%s is not in the room", target)
			case spec.Leave:
				return resp(currentEv.EventID())
			case spec.Ban:
				return nil, mxerr.Forbidden("%s is banned from the room", target)
			}
		} else if current != spec.Join && current != spec.Invite && current != spec.Knock && current != spec.Ban {
			return nil, mxerr.Forbidden("%s is not in the room", target)
		}
	case MembershipBan:
		if target == sender {
			return nil, mxerr.Forbidden("cannot ban yourself")
		}
	}
	p, err := b.build(eventSpec{Type: spec.MRoomMember, StateKey: &target, Sender: sender, Content: mustJSON(content)})
	if err != nil {
		return nil, err
	}
	if req.TxnID != "" {
		p.deviceID, p.txnID = req.DeviceID, req.TxnID
	}
	b.add(p)
	return resp(p.pdu.EventID())
}

func checkCanInvite(b *batch, sender, target, current string) error {
	if target == sender {
		return mxerr.Forbidden("cannot invite yourself")
	}
	senderMembership, _, err := b.membership(sender)
	if err != nil {
		return err
	}
	if senderMembership != spec.Join {
		return mxerr.Forbidden("%s is not in the room", sender)
	}
	switch current {
	case spec.Ban:
		return mxerr.Forbidden("%s is banned from the room", target)
	case spec.Join:
		return mxerr.Forbidden("%s is already in the room", target)
	}
	return nil
}

// sameProfile tells whether a repeated join would change nothing: then
// the existing join is returned instead of a new event. A join without
// a profile never overwrites the one in the room.
func sameProfile(current gomatrixserverlib.PDU, req *MembershipRequest) bool {
	if req.DisplayName == "" && req.AvatarURL == "" {
		return true
	}
	var c memberContent
	if err := json.Unmarshal(current.Content(), &c); err != nil {
		return false
	}
	return c.DisplayName == req.DisplayName && c.AvatarURL == req.AvatarURL
}
