package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/tidwall/gjson"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/mxerr"
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

// readSendJoinAnswer splits send_join's answer into its events without
// decoding them: each is decoded, and checked, once, by parseAnswerEvents
// (a whole json.Unmarshal of a 60 MB answer scans it twice more).
func readSendJoinAnswer(raw []byte) (*sendJoinAnswer, error) {
	// raw is valid JSON: doSigned decoded it.
	var answer sendJoinAnswer
	list := func(field string, out *[]json.RawMessage) error {
		v := gjson.GetBytes(raw, field)
		if !v.Exists() {
			return nil
		}
		if !v.IsArray() {
			return fmt.Errorf("%s is not a list", field)
		}
		v.ForEach(func(_, item gjson.Result) bool {
			*out = append(*out, subslice(raw, item))
			return true
		})
		return nil
	}
	if err := list("state", &answer.State); err != nil {
		return nil, err
	}
	if err := list("auth_chain", &answer.AuthChain); err != nil {
		return nil, err
	}
	if ev := gjson.GetBytes(raw, "event"); ev.Exists() {
		answer.Event = subslice(raw, ev)
	}
	return &answer, nil
}

// subslice is a value's bytes within the JSON it was found in (a copy
// when gjson does not say where).
func subslice(raw []byte, v gjson.Result) json.RawMessage {
	if end := v.Index + len(v.Raw); v.Index > 0 && end <= len(raw) && string(raw[v.Index:end]) == v.Raw {
		return raw[v.Index:end:end]
	}
	return json.RawMessage(v.Raw)
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
			answer, err := readSendJoinAnswer(raw)
			if err != nil {
				return mxerr.New(502, "M_UNKNOWN", "%s answered send_join with %v", server, err)
			}
			checked, err := f.checkSendJoin(ctx, req.RoomID, join, answer)
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

// checkSendJoin checks a send_join answer: every state and auth chain
// event is a valid event of the room (one that is not makes the answer
// unusable; their signatures are checked as they are stored), the create
// event is there and of the join's room version, and the join the resident
// sent back, when it did, is ours with its signature added.
func (f *Federation) checkSendJoin(ctx context.Context, roomID string, join gomatrixserverlib.PDU, answer *sendJoinAnswer) (*checkedJoin, error) {
	version := string(join.Version())
	impl, err := roomVersionImpl(version)
	if err != nil {
		return nil, err
	}
	keys := newKeyBatch(f.keys.ring)
	events, err := parseAnswerEvents(ctx, roomID, impl, keys, answer.State, answer.AuthChain)
	if err != nil {
		// Not the remote's Matrix error: the answer is what is wrong.
		return nil, fmt.Errorf("events that fail their checks: %v", err)
	}
	var create gomatrixserverlib.PDU
	for _, ev := range events {
		if ev.pdu.Type() == "m.room.create" && ev.pdu.StateKeyEquals("") {
			create = ev.pdu
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
	return &checkedJoin{version: version, impl: impl, keys: keys, join: join, events: events}, nil
}

// checkedJoin is a send_join answer read and checked but for the
// signatures of its events, which storeJoinedRoom checks part by part.
type checkedJoin struct {
	version string
	impl    gomatrixserverlib.IRoomVersion
	keys    *keyBatch
	join    gomatrixserverlib.PDU
	events  []*answerEvent // the state and auth chain, each event once
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
