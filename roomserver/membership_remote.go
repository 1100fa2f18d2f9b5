package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// Membership changes that need another server: joining, knocking on or
// leaving a room this server is not in goes through the federation's
// make_*/send_* handshakes (fedapi.Perform*); inviting a user of another
// server into a room this server is in needs that server's signature on
// the invite (fedapi.PerformInvite) before the invite is stored.

// roomOf turns a room ID or alias into a room ID. A remote alias is
// resolved by its server (query/directory), which also names servers in
// the room.
func (rs *Roomserver) roomOf(ctx context.Context, idOrAlias string) (string, []string, error) {
	switch {
	case strings.HasPrefix(idOrAlias, "#"):
		if domainOf(idOrAlias) != rs.serverName {
			resp, err := rs.remoteAlias(ctx, idOrAlias)
			if err != nil {
				return "", nil, err
			}
			return resp.RoomID, resp.Servers, nil
		}
		roomID, err := rs.reader.aliasRoom(ctx, idOrAlias)
		if err != nil {
			return "", nil, err
		}
		if roomID == "" {
			return "", nil, mxerr.NotFound("room alias %s not found", idOrAlias)
		}
		return roomID, nil, nil
	case strings.HasPrefix(idOrAlias, "!"):
		return idOrAlias, nil, nil
	}
	return "", nil, mxerr.InvalidParam("%q is neither a room ID nor a room alias", idOrAlias)
}

// remoteAlias resolves an alias of another server through the federation.
func (rs *Roomserver) remoteAlias(ctx context.Context, alias string) (*ResolveAliasResponse, error) {
	if domainOf(alias) == "" {
		return nil, mxerr.InvalidParam("%q is not a room alias", alias)
	}
	resp, err := fedapi.QueryDirectory.Call(ctx, rs.bus, &fedapi.QueryDirectoryRequest{Alias: alias})
	if err != nil {
		return nil, federationError(err)
	}
	return &ResolveAliasResponse{RoomID: resp.RoomID, Servers: resp.Servers}, nil
}

// federationError is what a client is told when the federation fails: a
// federation that no process serves is disabled; the other server's
// refusals pass as they are.
func federationError(err error) error {
	if me, ok := mxerr.As(err); ok && me.Status == http.StatusServiceUnavailable {
		return mxerr.Forbidden("federation is disabled")
	}
	return err
}

// locateRoom finds the room of a membership request and whether this
// server can apply it itself: servers is nil when it can, and otherwise
// lists the servers to ask, in the order to try them.
//
// This server applies a change itself when it holds the room's state and
// one of its users is joined, or nobody is joined anywhere (its copy of a
// room everyone left is all there is). A stub (a room known only by a
// local user's invite or knock) or a room all local users left while
// others stayed must be reached through a server in it.
func (rs *Roomserver) locateRoom(ctx context.Context, req *MembershipRequest) (string, []string, error) {
	roomID, dirServers, err := rs.roomOf(ctx, req.RoomID)
	if err != nil {
		return "", nil, err
	}
	room, known, err := rs.reader.room(ctx, roomID)
	if err != nil {
		return "", nil, err
	}
	var joined []string
	if known {
		if local, err := rs.localJoined(ctx, roomID); err != nil || local {
			return roomID, nil, err
		}
		state, err := rs.reader.currentState(ctx, room)
		if err != nil {
			return "", nil, err
		}
		if joined, err = rs.joinedServers(ctx, roomID); err != nil {
			return "", nil, err
		}
		if len(state) > 0 && len(joined) == 0 {
			return roomID, nil, nil
		}
	}
	if remote, err := rs.throughFederation(ctx, req, roomID, known); err != nil || !remote {
		return roomID, nil, err
	}
	inviter, err := rs.inviterServer(ctx, roomID, req.Target)
	if err != nil {
		return "", nil, err
	}
	// Room version 12's room IDs name no server: only the others remain.
	candidates := slices.Concat(req.Via, dirServers, []string{domainOf(roomID), inviter}, joined)
	servers := slices.DeleteFunc(dedupe(candidates), func(s string) bool { return s == "" || s == rs.serverName })
	if len(servers) == 0 {
		return "", nil, mxerr.NotFound("room %s not found", roomID)
	}
	return roomID, servers, nil
}

// throughFederation tells whether a change in a room this server is not
// in goes through another server: one's own join or knock, or one's own
// leave of an invite or knock. The local rules answer anything else in a
// known room (M_FORBIDDEN for whoever is not in it, an idempotent leave);
// in an unknown room there is nothing to answer it with.
func (rs *Roomserver) throughFederation(ctx context.Context, req *MembershipRequest, roomID string, known bool) (bool, error) {
	switch req.Membership {
	case MembershipJoin, MembershipKnock:
		if req.Target != req.Sender {
			return false, mxerr.Forbidden("cannot %s on behalf of another user", req.Membership)
		}
		return true, nil
	case MembershipLeave:
		if req.Target == req.Sender {
			m, err := rs.currentMembership(ctx, roomID, req.Sender)
			if err != nil || m == spec.Invite || m == spec.Knock {
				return err == nil, err
			}
		}
	}
	if !known {
		return false, mxerr.NotFound("room %s not found", roomID)
	}
	return false, nil
}

// joinedServers lists the servers of the room's joined members.
func (rs *Roomserver) joinedServers(ctx context.Context, roomID string) ([]string, error) {
	users, err := rs.reader.JoinedUsers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	return serversOf(users), nil
}

// serversOf lists the servers of users, sorted, once each.
func serversOf(users []string) []string {
	servers := make([]string, 0, 4)
	for _, u := range users {
		servers = append(servers, domainOf(u))
	}
	slices.Sort(servers)
	return slices.Compact(servers)
}

// localJoined tells whether a user of this server is joined to the room.
func (rs *Roomserver) localJoined(ctx context.Context, roomID string) (bool, error) {
	return hasMemberOf(ctx, rs.db, serverJoinedSQL, roomID, rs.serverName)
}

// inviterServer is the server of whoever invited userID to the room, when
// userID's membership is a pending invite ("" otherwise): that server is
// in the room.
func (rs *Roomserver) inviterServer(ctx context.Context, roomID, userID string) (string, error) {
	var sender string
	err := rs.db.QueryRowContext(ctx, `SELECT e.sender FROM rs_membership m
		JOIN rs_rooms r ON r.room_nid = m.room_nid
		JOIN rs_events e ON e.event_nid = m.event_nid
		WHERE r.room_id = $1 AND m.user_id = $2 AND m.membership = 'invite'`, roomID, userID).Scan(&sender)
	if isNoRows(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("invite of %s to %s: %w", userID, roomID, err)
	}
	return domainOf(sender), nil
}

// remoteMembership joins, knocks on or leaves a room this server is not
// in, through the federation.
func (rs *Roomserver) remoteMembership(ctx context.Context, req *MembershipRequest, roomID string, servers []string) (*MembershipResponse, error) {
	switch req.Membership {
	case MembershipJoin:
		content := memberContent{Membership: spec.Join, DisplayName: req.DisplayName, AvatarURL: req.AvatarURL, Reason: req.Reason}
		resp, err := fedapi.PerformJoin.Call(ctx, rs.bus, &fedapi.PerformJoinRequest{
			RoomID: roomID, UserID: req.Sender, ServerNames: servers, Content: mustJSON(content),
		})
		if err != nil {
			return nil, federationError(err)
		}
		return &MembershipResponse{RoomID: cmpOr(resp.RoomID, roomID), EventID: resp.EventID}, nil
	case MembershipKnock:
		resp, err := fedapi.PerformKnock.Call(ctx, rs.bus, &fedapi.PerformKnockRequest{
			RoomID: roomID, UserID: req.Sender, ServerNames: servers, Reason: req.Reason,
		})
		if err != nil {
			return nil, federationError(err)
		}
		return &MembershipResponse{RoomID: cmpOr(resp.RoomID, roomID), EventID: resp.EventID}, nil
	case MembershipLeave:
		resp, err := fedapi.PerformLeave.Call(ctx, rs.bus, &fedapi.PerformLeaveRequest{
			RoomID: roomID, UserID: req.Sender, ServerNames: servers, Reason: req.Reason,
		})
		if err != nil {
			return nil, federationError(err)
		}
		return &MembershipResponse{RoomID: roomID, EventID: resp.EventID}, nil
	}
	return nil, mxerr.Forbidden("%s is not in the room", req.Sender)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// remoteInvite is an invite built and signed by this server, not stored,
// with the room state shown to the invitee.
type remoteInvite struct {
	version gomatrixserverlib.IRoomVersion
	pdu     gomatrixserverlib.PDU
	state   []json.RawMessage
}

// inviteRemote invites a user of another server: the invite is built on
// the room's head by its worker, countersigned by the invitee's server
// outside the worker (the network must not hold the room), then input
// like any event received over federation. Should the room have moved on
// meanwhile, the invite is a fork that the input resolves.
func (rs *Roomserver) inviteRemote(ctx context.Context, req *MembershipRequest, roomID string) (*MembershipResponse, error) {
	built, err := rs.queue.submit(ctx, roomID, func(b *batch) (any, error) { return buildRemoteInvite(b, req) })
	if err != nil {
		return nil, err
	}
	inv, ok := built.(*remoteInvite)
	if !ok {
		return built.(*MembershipResponse), nil // nothing to do: an earlier answer
	}
	signed, err := fedapi.PerformInvite.Call(ctx, rs.bus, &fedapi.PerformInviteRequest{
		RoomVersion: string(inv.version.Version()), Event: inv.pdu.JSON(), InviteRoomState: inv.state,
	})
	if err != nil {
		return nil, federationError(err)
	}
	ev, err := inv.version.NewEventFromUntrustedJSON(signed.Event)
	if err != nil || ev.EventID() != inv.pdu.EventID() {
		return nil, mxerr.Unknown("the invitee's server returned another event than the invite")
	}
	resp, err := rs.inputEvents(ctx, &InputEventsRequest{RoomID: roomID, Events: []InputEvent{{
		Kind: InputKindNew, Event: signed.Event, Origin: rs.serverName,
	}}})
	if err != nil {
		return nil, err
	}
	if len(resp.Results) != 1 {
		return nil, errors.New("input of the invite gave no result")
	}
	switch r := resp.Results[0]; r.Status {
	case InputAccepted, InputDuplicate:
		return &MembershipResponse{RoomID: roomID, EventID: ev.EventID()}, nil
	case InputSoftFailed, InputRejected:
		return nil, mxerr.Forbidden("the invite is no longer allowed: %s", r.Reason)
	default:
		return nil, fmt.Errorf("input of invite %s: %s %s %v", r.EventID, r.Status, r.Reason, r.Missing)
	}
}

// buildRemoteInvite checks and builds the invite as a local one is
// (applyMembership), then takes it back out of the batch.
func buildRemoteInvite(b *batch, req *MembershipRequest) (any, error) {
	n := len(b.events)
	resp, err := applyMembership(b, req)
	if err != nil || len(b.events) == n {
		return resp, err
	}
	p := b.events[n]
	b.truncate(n)
	inv := &remoteInvite{version: b.head.version, pdu: p.pdu}
	keys := []stateKey{{spec.MRoomMember, req.Sender}}
	for _, t := range inviteStateTypes {
		keys = append(keys, stateKey{t, ""})
	}
	for _, k := range keys {
		ev, err := b.stateEvent(k)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			inv.state = append(inv.state, json.RawMessage(ev.JSON()))
		}
	}
	return inv, nil
}

// splitRemoteInvites takes the invites of users of other servers out of a
// new room's plan: they need their server's signature, so they are sent
// once the room exists (inviteAfterCreation).
func (rs *Roomserver) splitRemoteInvites(plan []eventSpec) ([]eventSpec, []string) {
	var remote []string
	kept := plan[:0:0]
	for _, es := range plan {
		if es.Type == spec.MRoomMember && es.StateKey != nil && domainOf(*es.StateKey) != rs.serverName &&
			membershipOfContent(es.Content) == spec.Invite {
			remote = append(remote, *es.StateKey)
			continue
		}
		kept = append(kept, es)
	}
	return kept, remote
}

// inviteAfterCreation invites users of other servers to a room just
// created. The room exists whatever they answer, so a failed invite is
// logged, not returned: the creator can invite again.
func (rs *Roomserver) inviteAfterCreation(ctx context.Context, req *CreateRoomRequest, roomID string, invitees []string) {
	for _, u := range invitees {
		_, err := rs.inviteRemote(ctx, &MembershipRequest{
			Sender: req.Sender, RoomID: roomID, Target: u, Membership: MembershipInvite, IsDirect: req.IsDirect,
		}, roomID)
		if err != nil {
			rs.log.Warn("invite to a new room failed", "room_id", roomID, "invitee", u, "err", err)
		}
	}
}
