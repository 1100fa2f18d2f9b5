package roomserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// maxEventBytes is the spec's limit on a whole PDU.
const maxEventBytes = 65536

// eventSpec is an event to build: what the request says, before the
// roomserver adds prev_events, auth_events, depth and signatures.
type eventSpec struct {
	Type     string
	StateKey *string
	Sender   string
	Content  json.RawMessage
	Redacts  string // top-level redacts, room versions 1 to 10
}

// userIDForSender maps sender IDs to user IDs: they are the same in every
// room version Chappe creates (no pseudo-IDs).
func userIDForSender(_ spec.RoomID, senderID spec.SenderID) (*spec.UserID, error) {
	return spec.NewUserID(string(senderID), true)
}

// build makes, signs and authorises an event on top of the batch's head,
// against its current state. It does not add it to the batch.
func (b *batch) build(es eventSpec) (*pendingEvent, error) {
	if len(es.Content) > maxEventBytes {
		return nil, mxerr.TooLarge("event content is over %d bytes", maxEventBytes)
	}
	version := b.head.version
	proto := gomatrixserverlib.ProtoEvent{
		SenderID:   es.Sender,
		RoomID:     b.head.id,
		Type:       es.Type,
		StateKey:   es.StateKey,
		PrevEvents: b.extremities,
		Depth:      b.depth + 1,
		Content:    spec.RawJSON(es.Content),
		Redacts:    es.Redacts,
		Version:    version,
	}
	if b.extremities == nil {
		proto.PrevEvents = []string{}
	}
	needed, err := gomatrixserverlib.StateNeededForProtoEvent(&proto)
	if err != nil {
		return nil, mxerr.BadJSON("%s: %v", es.Type, err)
	}
	var authEvents []gomatrixserverlib.PDU
	authIDs := []string{}
	for _, t := range needed.Tuples() {
		ev, err := b.stateEvent(stateKey{t.EventType, t.StateKey})
		if err != nil {
			return nil, err
		}
		if ev == nil {
			continue
		}
		authEvents = append(authEvents, ev)
		// Room version 12 implies the create event by the room ID and
		// forbids listing it.
		if t.EventType == spec.MRoomCreate && version.DomainlessRoomIDs() {
			continue
		}
		authIDs = append(authIDs, ev.EventID())
	}
	proto.AuthEvents = authIDs
	now := time.Now()
	if es.Type == spec.MRoomCreate && version.DomainlessRoomIDs() {
		proto.RoomID = ""                // the room ID is derived from this event
		now = b.rs.createClock.next(now) // create_clock.go
	}
	pdu, err := version.NewEventBuilderFromProtoEvent(&proto).
		Build(now, spec.ServerName(b.rs.serverName), gomatrixserverlib.KeyID(b.rs.key.ID), b.rs.key.Private)
	if err != nil {
		return nil, buildError(es.Type, err)
	}
	if len(pdu.JSON()) > maxEventBytes {
		return nil, mxerr.TooLarge("event is over %d bytes", maxEventBytes)
	}
	provider, err := gomatrixserverlib.NewAuthEvents(authEvents)
	if err != nil {
		return nil, fmt.Errorf("auth events for %s: %w", es.Type, err)
	}
	if err := gomatrixserverlib.Allowed(pdu, provider, userIDForSender); err != nil {
		return nil, authError(err)
	}
	p := &pendingEvent{pdu: pdu}
	if sk := pdu.StateKey(); sk != nil {
		p.key = &stateKey{pdu.Type(), *sk}
		p.replaces = b.stateRef(*p.key)
		if pdu.Type() == spec.MRoomMember {
			p.membership, _ = pdu.Membership()
		}
	}
	return p, nil
}

// buildError turns a builder failure into the client's error.
func buildError(eventType string, err error) error {
	var ve gomatrixserverlib.EventValidationError
	if errors.As(err, &ve) && ve.Code == gomatrixserverlib.EventValidationTooLarge {
		return mxerr.TooLarge("%s", ve.Message)
	}
	return mxerr.BadJSON("cannot build %s event: %v", eventType, err)
}

// authError turns an auth-rules rejection into M_FORBIDDEN.
func authError(err error) error {
	var na *gomatrixserverlib.NotAllowed
	if errors.As(err, &na) {
		return mxerr.Forbidden("%s", na.Message)
	}
	var ve gomatrixserverlib.EventValidationError
	if errors.As(err, &ve) {
		return mxerr.Forbidden("%s", ve.Message)
	}
	var vp *gomatrixserverlib.EventValidationError
	if errors.As(err, &vp) {
		return mxerr.Forbidden("%s", vp.Message)
	}
	return mxerr.New(http.StatusForbidden, "M_FORBIDDEN", "event not allowed: %v", err)
}
