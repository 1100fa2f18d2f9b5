package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
)

// supportedVersions are the room versions this server can join or knock
// on (make_join's and make_knock's ver).
func supportedVersions() []string {
	var out []string
	for v := range gomatrixserverlib.RoomVersions() {
		out = append(out, string(v))
	}
	sort.Strings(out)
	return out
}

// handshake is a make_/send_ exchange done here by hand (leave, knock):
// the library's client reshapes their answers.
type handshake struct {
	membership string
	makePath   string // e.g. v1 + "/make_leave"
	sendPath   string // e.g. v2 + "/send_leave"
	versions   []string
}

// template is a make_* answer.
type template struct {
	RoomVersion string                       `json:"room_version"`
	Event       gomatrixserverlib.ProtoEvent `json:"event"`
}

// remoteMembership does a handshake with the first server that takes it:
// the template is checked (the spec's list: type, room, sender, state key,
// membership), completed with content, signed and sent; finish then
// checks and stores the outcome with the send_* answer (an error there
// tries the next server too).
func (f *Federation) remoteMembership(ctx context.Context, h handshake, roomID, userID string, servers []string, content map[string]any,
	finish func(server string, ev gomatrixserverlib.PDU, answer json.RawMessage) error) (gomatrixserverlib.PDU, error) {
	if mxid.ServerOf(userID) != f.serverName {
		return nil, mxerr.Forbidden("%s is not a user of this server", userID)
	}
	var errs []error
	for _, server := range servers {
		err := f.allowed(server)
		if err == nil {
			var ev gomatrixserverlib.PDU
			var answer json.RawMessage
			if ev, answer, err = f.handshakeVia(ctx, h, roomID, userID, server, content); err == nil {
				if err = finish(server, ev, answer); err == nil {
					return ev, nil
				}
			}
		}
		f.log.Info("remote membership failed", "membership", h.membership, "room", roomID, "via", server, "err", err)
		errs = append(errs, err)
	}
	return nil, firstMatrixError(errs, "no server to %s %s through", h.membership, roomID)
}

// storeOutOfRoom records a local user's membership of a room this server
// is not in (a rejected invite, a knock) with the roomserver, with the
// stripped state to show for it.
func (f *Federation) storeOutOfRoom(ctx context.Context, ev gomatrixserverlib.PDU, stripped []json.RawMessage) error {
	_, err := roomserver.StoreInvite.Call(ctx, f.bus, &roomserver.StoreInviteRequest{
		RoomVersion: string(ev.Version()), Event: ev.JSON(), InviteRoomState: stripped,
	})
	if err != nil {
		return fmt.Errorf("store %s: %w", ev.EventID(), err)
	}
	return nil
}

func (f *Federation) handshakeVia(ctx context.Context, h handshake, roomID, userID, server string, content map[string]any) (gomatrixserverlib.PDU, json.RawMessage, error) {
	path := h.makePath + "/" + url.PathEscape(roomID) + "/" + url.PathEscape(userID)
	if len(h.versions) > 0 {
		q := url.Values{"ver": h.versions}
		path += "?" + q.Encode()
	}
	var t template
	if err := f.doSigned(ctx, "GET", server, path, nil, &t); err != nil {
		return nil, nil, remoteErr(server, err)
	}
	ev, err := f.completeTemplate(&t, roomID, userID, h.membership, content)
	if err != nil {
		return nil, nil, fmt.Errorf("template from %s: %w", server, err)
	}
	path = h.sendPath + "/" + url.PathEscape(roomID) + "/" + url.PathEscape(ev.EventID())
	var answer json.RawMessage
	if err := f.doSigned(ctx, "PUT", server, path, json.RawMessage(ev.JSON()), &answer); err != nil {
		return nil, nil, remoteErr(server, err)
	}
	return ev, answer, nil
}

// completeTemplate checks a make_* template and builds the event from it
// with content added, signed by this server.
func (f *Federation) completeTemplate(t *template, roomID, userID, membership string, content map[string]any) (gomatrixserverlib.PDU, error) {
	if t.RoomVersion == "" {
		t.RoomVersion = "1" // the spec's default
	}
	impl, err := roomVersionImpl(t.RoomVersion)
	if err != nil {
		return nil, err
	}
	p := &t.Event
	var merged map[string]any
	if err := json.Unmarshal(p.Content, &merged); err != nil {
		return nil, mxerr.BadJSON("template content: %v", err)
	}
	if p.Type != spec.MRoomMember || p.RoomID != roomID || p.SenderID != userID ||
		p.StateKey == nil || *p.StateKey != userID || merged["membership"] != membership {
		return nil, mxerr.BadJSON("the template is not a %s of %s in %s", membership, userID, roomID)
	}
	// The template's content (join_authorised_via_users_server) stays;
	// ours (display name, reason) is added; the membership cannot change.
	for k, v := range content {
		if k != "membership" {
			merged[k] = v
		}
	}
	if err := p.SetContent(merged); err != nil {
		return nil, err
	}
	if err := p.SetUnsigned(struct{}{}); err != nil {
		return nil, err
	}
	p.Redacts = ""
	return impl.NewEventBuilderFromProtoEvent(p).Build(time.Now(), spec.ServerName(f.serverName), gomatrixserverlib.KeyID(f.key.ID), f.key.Private)
}

func withReason(reason string) map[string]any {
	if reason == "" {
		return nil
	}
	return map[string]any{"reason": reason}
}

// performLeave leaves a room this server is not in: a rejected invite or
// a retracted knock.
func (f *Federation) performLeave(ctx context.Context, req *fedapi.PerformLeaveRequest) (*fedapi.PerformLeaveResponse, error) {
	h := handshake{membership: membershipLeave, makePath: v1 + "/make_leave", sendPath: v2 + "/send_leave"}
	ev, err := f.remoteMembership(ctx, h, req.RoomID, req.UserID, req.ServerNames, withReason(req.Reason),
		func(_ string, ev gomatrixserverlib.PDU, _ json.RawMessage) error {
			return f.storeOutOfRoom(ctx, ev, nil)
		})
	if err != nil {
		return nil, err
	}
	return &fedapi.PerformLeaveResponse{EventID: ev.EventID()}, nil
}

// performKnock knocks on a room this server is not in; the room's
// stripped state from send_knock is kept to show the knock.
func (f *Federation) performKnock(ctx context.Context, req *fedapi.PerformKnockRequest) (*fedapi.PerformKnockResponse, error) {
	h := handshake{membership: membershipKnock, makePath: v1 + "/make_knock", sendPath: v1 + "/send_knock", versions: supportedVersions()}
	ev, err := f.remoteMembership(ctx, h, req.RoomID, req.UserID, req.ServerNames, withReason(req.Reason),
		func(server string, ev gomatrixserverlib.PDU, answer json.RawMessage) error {
			var a struct {
				KnockRoomState []json.RawMessage `json:"knock_room_state"`
			}
			if err := json.Unmarshal(answer, &a); err != nil {
				return mxerr.New(502, "M_UNKNOWN", "%s answered send_knock with %v", server, err)
			}
			return f.storeOutOfRoom(ctx, ev, a.KnockRoomState)
		})
	if err != nil {
		return nil, err
	}
	return &fedapi.PerformKnockResponse{RoomID: ev.RoomID().String(), EventID: ev.EventID()}, nil
}
