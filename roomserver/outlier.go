package roomserver

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// storeInvite records an invite of a local user received from another
// server (StoreInvite).
func (rs *Roomserver) storeInvite(ctx context.Context, req *StoreInviteRequest) (*StoreInviteResponse, error) {
	// Besides invites, the federation stores here the leave that rejects
	// a remote invite and a knock, both made through another server.
	switch membershipInJSON(req.Event) {
	case spec.Invite, spec.Leave, spec.Knock:
	default:
		return nil, mxerr.BadJSON("the event is not an invite, a leave or a knock")
	}
	if err := rs.storeOutOfRoomMembership(ctx, req.RoomVersion, req.Event, req.InviteRoomState); err != nil {
		return nil, err
	}
	return &StoreInviteResponse{}, nil
}

func membershipInJSON(event json.RawMessage) string {
	var ev struct {
		Content struct {
			Membership string `json:"membership"`
		} `json:"content"`
	}
	_ = json.Unmarshal(event, &ev)
	return ev.Content.Membership
}

// Keys of unsigned where the stripped state given with an out-of-room
// membership is kept, per membership.
var strippedStateKeys = map[string]string{
	spec.Invite: "invite_room_state",
	spec.Knock:  "knock_room_state",
}

// storeOutOfRoomMembership stores a local user's membership event in a
// room this server is not in: a remote invite, the leave that rejects it,
// a knock and its withdrawal. The room is created as a stub (its version,
// no state) when unknown. The event is an outlier, yet takes a stream
// position and sets the user's rs_membership row, and is published, so
// that /sync shows it; strippedState (the room's stripped state sent with
// an invite or knock) is kept in the stored event's unsigned
// (invite_room_state, knock_room_state). In a room with state whose DAG
// has the event's prev_events, the event is input as a new event instead.
func (rs *Roomserver) storeOutOfRoomMembership(ctx context.Context, roomVersion string, event json.RawMessage, strippedState []json.RawMessage) error {
	version, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(roomVersion))
	if err != nil {
		return mxerr.UnsupportedRoomVersion("room version %q is not supported", roomVersion)
	}
	ev, err := version.NewEventFromTrustedJSON(event, false)
	if err != nil {
		return mxerr.BadJSON("malformed event: %v", err)
	}
	membership, err := ev.Membership()
	if ev.Type() != spec.MRoomMember || ev.StateKey() == nil || err != nil {
		return mxerr.BadJSON("the event is not a membership event")
	}
	target := *ev.StateKey()
	if domainOf(target) != rs.serverName {
		return mxerr.BadJSON("%s is not a user of this server", target)
	}
	if key := strippedStateKeys[membership]; key != "" && len(strippedState) > 0 {
		if err := ev.SetUnsignedField(key, strippedState); err != nil {
			return mxerr.BadJSON("stripped state: %v", err)
		}
	}
	roomID := ev.RoomID().String()
	_, err = rs.queue.submitAlone(ctx, roomID, func(h *roomHead) (any, error) {
		if h != nil && h.version.Version() != version.Version() {
			return nil, mxerr.BadJSON("room %s has version %s, not %s", roomID, h.version.Version(), roomVersion)
		}
		if h != nil && h.snapshot != 0 {
			resp, err := rs.applyInput(h, []InputEvent{{Kind: InputKindNew, Event: ev.JSON()}})
			if err != nil {
				return nil, err
			}
			switch r := resp.Results[0]; r.Status {
			case InputAccepted, InputDuplicate, InputSoftFailed:
				return nil, nil
			case InputRejected:
				return nil, mxerr.Forbidden("%s", r.Reason)
			}
			// Its prev_events are not here: this server is not in the
			// room any more.
		}
		return nil, rs.storeMembershipOutlier(h, roomID, version, ev, membership)
	})
	return err
}

// storeMembershipOutlier stores an out-of-room membership (see
// storeOutOfRoomMembership) at the next position.
func (rs *Roomserver) storeMembershipOutlier(h *roomHead, roomID string, version gomatrixserverlib.IRoomVersion,
	ev gomatrixserverlib.PDU, membership string) error {
	ctx := context.Background()
	known := map[string]*dagEvent{}
	if err := lookupEvents(ctx, rs.db, []string{ev.EventID()}, known); err != nil {
		return err
	}
	if known[ev.EventID()] != nil {
		return nil // already stored
	}
	if h == nil {
		h = &roomHead{id: roomID, version: version}
	}
	rs.commitMu.Lock()
	defer rs.commitMu.Unlock()
	pos := rs.lastPos + 1
	p := &pendingEvent{pdu: ev, pos: pos, membership: membership}
	err := rs.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		if h.nid == 0 {
			if err := insertRoom(ctx, tx, h, nil); err != nil {
				return err
			}
		}
		row := newEventRow(ev, pos)
		row.outlier = true
		nid, err := row.save(ctx, tx, h.nid, nil)
		if err != nil {
			return err
		}
		p.nid = nid
		return upsertMembership(ctx, tx, h.nid, *ev.StateKey(), membership, nid, pos)
	})
	if err != nil {
		rs.heads.remove(roomID)
		return fmt.Errorf("store membership of %s in %s: %w", *ev.StateKey(), roomID, err)
	}
	rs.lastPos = pos
	rs.publisher.enqueue([]OutputEvent{outputOf(h, p)})
	return nil
}
