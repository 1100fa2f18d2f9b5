package roomserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// sendEvent sends a message or state event, idempotently per (sender,
// device, transaction ID).
func (rs *Roomserver) sendEvent(ctx context.Context, req *SendEventRequest) (*SendEventResponse, error) {
	if err := checkUserID("sender", req.Sender); err != nil {
		return nil, err
	}
	if req.Type == "" {
		return nil, mxerr.BadJSON("event type is missing")
	}
	if len(req.Content) > maxEventBytes {
		return nil, mxerr.TooLarge("event content is over %d bytes", maxEventBytes)
	}
	if !isJSONObject(req.Content) {
		return nil, mxerr.BadJSON("event content must be a JSON object")
	}
	roomID, err := rs.resolveRoom(ctx, req.RoomID)
	if me, ok := mxerr.As(err); ok && me.Code == "M_NOT_FOUND" {
		// As for a room one has left: not saying whether it exists.
		return nil, mxerr.Forbidden("%s is not in room %s", req.Sender, req.RoomID)
	}
	if err != nil {
		return nil, err
	}
	if req.TxnID != "" {
		if id, err := rs.txnEvent(ctx, req.Sender, req.DeviceID, req.TxnID); err != nil || id != "" {
			return &SendEventResponse{EventID: id}, err
		}
	}
	if req.Type == spec.MRoomCanonicalAlias && req.StateKey != nil {
		if err := rs.checkCanonicalAlias(ctx, roomID, req.Content); err != nil {
			return nil, err
		}
	}
	resp, err := rs.queue.submit(ctx, roomID, func(b *batch) (any, error) { return applySend(b, req) })
	if err != nil {
		return nil, err
	}
	return resp.(*SendEventResponse), nil
}

func applySend(b *batch, req *SendEventRequest) (any, error) {
	if id, ok := b.sentTxn(req.Sender, req.DeviceID, req.TxnID); ok {
		return &SendEventResponse{EventID: id}, nil
	}
	membership, _, err := b.membership(req.Sender)
	if err != nil {
		return nil, err
	}
	if membership != spec.Join {
		return nil, mxerr.Forbidden("%s is not in the room", req.Sender)
	}
	es := eventSpec{Type: req.Type, StateKey: req.StateKey, Sender: req.Sender, Content: req.Content}
	var target eventRef
	if req.Type == spec.MRoomRedaction && req.StateKey == nil {
		if target, err = prepareRedaction(b, req, &es); err != nil {
			return nil, err
		}
	}
	p, err := b.build(es)
	if err != nil {
		return nil, err
	}
	p.redacts = target
	if req.TxnID != "" {
		p.deviceID, p.txnID = req.DeviceID, req.TxnID
	}
	b.add(p)
	return &SendEventResponse{EventID: p.pdu.EventID()}, nil
}

// prepareRedaction finds the redacted event, checks the sender may redact
// it (their own event, or the redact power level), and puts redacts where
// the room version wants it: in content from version 11, at the top
// level before.
func prepareRedaction(b *batch, req *SendEventRequest, es *eventSpec) (eventRef, error) {
	targetID := req.Redacts
	if targetID == "" {
		targetID = redactsInContent(req.Content)
	}
	if targetID == "" {
		return eventRef{}, mxerr.BadJSON("a redaction needs the ID of the event it redacts")
	}
	ref, targetSender, err := b.findEvent(targetID)
	if err != nil {
		return eventRef{}, err
	}
	if ref.isZero() {
		return eventRef{}, mxerr.NotFound("event %s not found in this room", targetID)
	}
	if targetSender != req.Sender {
		level, pl, err := b.userLevel(req.Sender)
		if err != nil {
			return eventRef{}, err
		}
		if level < pl.Redact {
			return eventRef{}, mxerr.Forbidden("redacting another user's event needs power level %d, %s has %d", pl.Redact, req.Sender, level)
		}
	}
	if versionNumber(b.head.version) >= 11 {
		var content map[string]json.RawMessage
		if err := json.Unmarshal(req.Content, &content); err != nil {
			return eventRef{}, mxerr.BadJSON("redaction content: %v", err)
		}
		content["redacts"] = mustJSON(targetID)
		es.Content = mustJSON(content)
	} else {
		es.Redacts = targetID
	}
	return ref, nil
}

// findEvent finds an event of the batch's room, stored or in the batch.
func (b *batch) findEvent(eventID string) (eventRef, string, error) {
	for _, p := range b.events {
		if p.pdu.EventID() == eventID {
			return eventRef{pending: p}, string(p.pdu.SenderID()), nil
		}
	}
	var (
		nid    int64
		sender string
	)
	err := b.rs.db.QueryRowContext(b.ctx, `SELECT event_nid, sender FROM rs_events WHERE event_id = $1 AND room_nid = $2`,
		eventID, b.head.nid).Scan(&nid, &sender)
	if errors.Is(err, sql.ErrNoRows) {
		return eventRef{}, "", nil
	}
	if err != nil {
		return eventRef{}, "", fmt.Errorf("find event %s: %w", eventID, err)
	}
	return eventRef{nid: nid}, sender, nil
}

// checkCanonicalAlias makes sure the local aliases a canonical alias
// event publishes point to this room, as the spec requires (M_BAD_ALIAS).
func (rs *Roomserver) checkCanonicalAlias(ctx context.Context, roomID string, content json.RawMessage) error {
	var c struct {
		Alias      string   `json:"alias"`
		AltAliases []string `json:"alt_aliases"`
	}
	if err := json.Unmarshal(content, &c); err != nil {
		return mxerr.InvalidParam("m.room.canonical_alias content: %v", err)
	}
	aliases := c.AltAliases
	if c.Alias != "" {
		aliases = append(aliases, c.Alias)
	}
	for _, alias := range aliases {
		if !strings.HasPrefix(alias, "#") || domainOf(alias) == "" {
			return mxerr.InvalidParam("%q is not a room alias", alias)
		}
		if domainOf(alias) != rs.serverName {
			continue
		}
		target, err := rs.reader.aliasRoom(ctx, alias)
		if err != nil {
			return err
		}
		if target != roomID {
			return mxerr.New(http.StatusBadRequest, "M_BAD_ALIAS", "room alias %s does not point to this room", alias)
		}
	}
	return nil
}
