package federation

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
)

// performInvite sends an invite of a remote user to their server (invite
// v2) and returns it countersigned. The answer must be the same event
// (same ID) and carry valid signatures of both servers.
func (f *Federation) performInvite(ctx context.Context, req *fedapi.PerformInviteRequest) (*fedapi.PerformInviteResponse, error) {
	ev, err := parsePDU(req.RoomVersion, req.Event)
	if err != nil {
		return nil, err
	}
	if ev.Type() != "m.room.member" || ev.StateKey() == nil {
		return nil, mxerr.BadJSON("not a membership event")
	}
	if m, err := ev.Membership(); err != nil || m != membershipInvite {
		return nil, mxerr.BadJSON("not an invite")
	}
	server := mxid.ServerOf(*ev.StateKey())
	if err := f.allowed(server); err != nil {
		return nil, err
	}
	body := map[string]any{"room_version": req.RoomVersion, "event": req.Event, "invite_room_state": req.InviteRoomState}
	if req.InviteRoomState == nil {
		body["invite_room_state"] = []json.RawMessage{}
	}
	var answer struct {
		Event json.RawMessage `json:"event"`
	}
	path := v2 + "/invite/" + url.PathEscape(ev.RoomID().String()) + "/" + url.PathEscape(ev.EventID())
	if err := f.doSigned(ctx, "PUT", server, path, body, &answer); err != nil {
		return nil, remoteErr(server, err)
	}
	signed, err := parsePDU(req.RoomVersion, answer.Event)
	if err != nil {
		return nil, mxerr.New(502, "M_UNKNOWN", "%s answered an invalid invite: %v", server, err)
	}
	if signed.EventID() != ev.EventID() {
		return nil, mxerr.New(502, "M_UNKNOWN", "%s answered another event (%s) than the invite %s", server, signed.EventID(), ev.EventID())
	}
	if err := f.verifySignatures(ctx, signed); err != nil {
		return nil, mxerr.New(502, "M_UNKNOWN", "%s answered an invite without valid signatures: %v", server, err)
	}
	return &fedapi.PerformInviteResponse{Event: signed.JSON()}, nil
}
