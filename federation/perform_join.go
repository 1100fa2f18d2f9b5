package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
)

// A remote join is done by hand rather than with gomatrixserverlib's
// PerformJoin: the library checks the send_join answer with each event's
// auth_events alone, and from room version 12 on the create event is no
// longer among them, so it refuses every such room. Here the answer's
// events are checked for signatures and hashes, and the roomserver does
// the auth rules when it stores the room (StoreJoinedRoom).

// sendJoinAnswer is send_join v2's answer.
type sendJoinAnswer struct {
	State     []json.RawMessage `json:"state"`
	AuthChain []json.RawMessage `json:"auth_chain"`
	Event     json.RawMessage   `json:"event"`
}

// performJoin joins a local user to a room through the first of the
// given servers that lets it: make_join, the join built and signed here,
// send_join v2, the answer verified, the room stored.
func (f *Federation) performJoin(ctx context.Context, req *fedapi.PerformJoinRequest) (*fedapi.PerformJoinResponse, error) {
	content := map[string]any{}
	if len(req.Content) > 0 {
		if err := json.Unmarshal(req.Content, &content); err != nil {
			return nil, mxerr.BadJSON("content: %v", err)
		}
	}
	h := handshake{membership: membershipJoin, makePath: v1 + "/make_join", sendPath: v2 + "/send_join", versions: supportedVersions()}
	var resp fedapi.PerformJoinResponse
	_, err := f.remoteMembership(ctx, h, req.RoomID, req.UserID, req.ServerNames, content,
		func(server string, join gomatrixserverlib.PDU, raw json.RawMessage) error {
			var answer sendJoinAnswer
			if err := json.Unmarshal(raw, &answer); err != nil {
				return mxerr.New(502, "M_UNKNOWN", "%s answered send_join with %v", server, err)
			}
			checked, err := f.checkSendJoin(ctx, req.RoomID, join, &answer)
			if err != nil {
				return fmt.Errorf("send_join answer of %s: %w", server, err)
			}
			stored, err := f.storeJoinedRoom(ctx, checked)
			if err != nil {
				return fmt.Errorf("store the room joined through %s: %w", server, err)
			}
			resp = fedapi.PerformJoinResponse{RoomID: stored.RoomID, EventID: stored.EventID}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// checkSendJoin verifies a send_join answer: every state and auth chain
// event is a validly signed event of the room (one that is not makes the
// answer unusable), the create event is there and of the join's room
// version, and the join the resident sent back, when it did, is ours
// with its signature added.
func (f *Federation) checkSendJoin(ctx context.Context, roomID string, join gomatrixserverlib.PDU, answer *sendJoinAnswer) (*checkedJoin, error) {
	version := string(join.Version())
	state := f.verifyPDUs(ctx, roomID, version, asBytes(answer.State))
	chain := f.verifyPDUs(ctx, roomID, version, asBytes(answer.AuthChain))
	if len(state) != len(answer.State) || len(chain) != len(answer.AuthChain) {
		return nil, errors.New("events that fail their checks")
	}
	var create gomatrixserverlib.PDU
	for _, ev := range append(append([]gomatrixserverlib.PDU{}, state...), chain...) {
		if ev.Type() == "m.room.create" && ev.StateKeyEquals("") {
			create = ev
		}
	}
	if create == nil {
		return nil, errors.New("no m.room.create event")
	}
	var c struct {
		RoomVersion string `json:"room_version"`
	}
	if json.Unmarshal(create.Content(), &c) != nil || (c.RoomVersion != version && !(c.RoomVersion == "" && version == "1")) {
		return nil, fmt.Errorf("the create event's room version is %q, the join's %q", c.RoomVersion, version)
	}
	if len(answer.Event) > 0 {
		if theirs, err := parsePDU(version, answer.Event); err == nil && theirs.EventID() == join.EventID() && f.verifySignatures(ctx, theirs) == nil {
			join = theirs
		}
	}
	return &checkedJoin{version: version, join: join, state: state, chain: chain}, nil
}

// checkedJoin is a verified send_join answer.
type checkedJoin struct {
	version      string
	join         gomatrixserverlib.PDU
	state, chain []gomatrixserverlib.PDU
}

// joinPartBytes bounds one StoreJoinedRoom message: NATS refuses messages
// over 1 MB by default, and the answer of a room of some 1,500 members
// is already bigger.
const joinPartBytes = 512 << 10

// storeJoinedRoom hands a verified send_join answer to the roomserver: in
// one message when it is small, else as parts of events (auth events
// first, each stored as an outlier) and a last message naming the state.
func (f *Federation) storeJoinedRoom(ctx context.Context, c *checkedJoin) (*roomserver.StoreJoinedRoomResponse, error) {
	size := len(c.join.JSON())
	for _, ev := range append(append([]gomatrixserverlib.PDU{}, c.state...), c.chain...) {
		size += len(ev.JSON())
	}
	if size < joinPartBytes {
		return roomserver.StoreJoinedRoom.Call(ctx, f.bus, &roomserver.StoreJoinedRoomRequest{
			RoomVersion: c.version,
			JoinEvent:   c.join.JSON(),
			State:       rawJSON(authOrder(c.state)),
			AuthChain:   rawJSON(authOrder(c.chain)),
		})
	}
	seen := map[string]bool{}
	var all []gomatrixserverlib.PDU
	for _, ev := range append(append([]gomatrixserverlib.PDU{}, c.chain...), c.state...) {
		if !seen[ev.EventID()] {
			seen[ev.EventID()] = true
			all = append(all, ev)
		}
	}
	part := &roomserver.StoreJoinedRoomRequest{RoomVersion: c.version, JoinEvent: c.join.JSON(), Partial: true}
	partBytes := 0
	flush := func() error {
		if len(part.State) == 0 {
			return nil
		}
		if _, err := roomserver.StoreJoinedRoom.Call(ctx, f.bus, part); err != nil {
			return err
		}
		part.State, partBytes = nil, 0
		return nil
	}
	for _, ev := range authOrder(all) {
		if partBytes+len(ev.JSON()) > joinPartBytes {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		part.State = append(part.State, ev.JSON())
		partBytes += len(ev.JSON())
	}
	if err := flush(); err != nil {
		return nil, err
	}
	ids := make([]string, len(c.state))
	for i, ev := range c.state {
		ids[i] = ev.EventID()
	}
	return roomserver.StoreJoinedRoom.Call(ctx, f.bus, &roomserver.StoreJoinedRoomRequest{
		RoomVersion: c.version, JoinEvent: c.join.JSON(), StateIDs: ids,
	})
}

// rawJSON is the JSON of events.
func rawJSON(evs []gomatrixserverlib.PDU) []json.RawMessage {
	out := make([]json.RawMessage, len(evs))
	for i, ev := range evs {
		out[i] = ev.JSON()
	}
	return out
}

// firstMatrixError is what to answer when every server failed: the first
// Matrix error a server gave (a refusal says more than a timeout), else
// a 502 naming them all.
func firstMatrixError(errs []error, format string, args ...any) error {
	for _, err := range errs {
		if me, ok := mxerr.As(err); ok && me.Status != 502 {
			return me
		}
	}
	if len(errs) == 0 {
		return mxerr.NotFound(format, args...)
	}
	e := mxerr.New(502, "M_UNKNOWN", format, args...)
	e.Message += ": " + errors.Join(errs...).Error()
	return e
}
