package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"strconv"
	"time"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
)

// Bounds of the history a server may ask for at once.
const (
	maxBackfillLimit      = 100
	maxMissingEventsLimit = 100
	defaultMissingEvents  = 10
)

// roomAccess checks that origin may ask about roomID's history at all:
// the room is known here, its ACL lets origin in, and origin had a member
// joined at some point. Which events it may then see in full is the
// history visibility's to say (visibleTo).
func (f *Federation) roomAccess(ctx context.Context, roomID, origin string) error {
	if !mxid.RoomID(roomID) {
		return mxerr.InvalidParam("%q is not a room ID", roomID)
	}
	if _, ok, err := f.reader.RoomVersion(ctx, roomID); err != nil {
		return err
	} else if !ok {
		return mxerr.NotFound("room %s is unknown here", roomID)
	}
	if err := f.checkServerACL(ctx, roomID, origin); err != nil {
		return err
	}
	was, err := f.reader.ServerWasInRoom(ctx, roomID, origin)
	if err != nil {
		return err
	}
	if !was {
		return mxerr.Forbidden("%s is not in room %s", origin, roomID)
	}
	return nil
}

// pdus lists the JSON of stored events.
func pdus(evs []roomserver.StoredPDU) []json.RawMessage {
	out := make([]json.RawMessage, len(evs))
	for i, ev := range evs {
		out[i] = ev.JSON
	}
	return out
}

// visibleTo applies the rooms' history visibility for origin to events
// about to be sent to it: those it may not see are redacted (as Synapse
// does: the DAG stays whole, the content does not leak). Auth chains need
// no check: auth events are always given.
func (f *Federation) visibleTo(ctx context.Context, origin string, evs []roomserver.StoredPDU) ([]roomserver.StoredPDU, error) {
	byRoom := map[string][]string{}
	for _, ev := range evs {
		byRoom[ev.RoomID] = append(byRoom[ev.RoomID], ev.EventID)
	}
	visible := make(map[string]bool, len(evs))
	for roomID, ids := range byRoom {
		v, err := f.reader.VisibleToServer(ctx, roomID, origin, ids)
		if err != nil {
			return nil, fmt.Errorf("history visibility of %s for %s: %w", roomID, origin, err)
		}
		maps.Copy(visible, v)
	}
	out := make([]roomserver.StoredPDU, len(evs))
	for i, ev := range evs {
		out[i] = ev
		if visible[ev.EventID] {
			continue
		}
		redacted, err := redactPDU(ev.RoomVersion, ev.JSON)
		if err != nil {
			return nil, fmt.Errorf("redact %s: %w", ev.EventID, err)
		}
		out[i].JSON = redacted
	}
	return out, nil
}

// redactPDU is the redacted form of an event of a room version.
func redactPDU(version string, pdu json.RawMessage) (json.RawMessage, error) {
	impl, err := roomVersionImpl(version)
	if err != nil {
		return nil, err
	}
	return impl.RedactEventJSON(pdu)
}

// visiblePDUs is pdus after visibleTo.
func (f *Federation) visiblePDUs(ctx context.Context, origin string, evs []roomserver.StoredPDU) ([]json.RawMessage, error) {
	evs, err := f.visibleTo(ctx, origin, evs)
	if err != nil {
		return nil, err
	}
	return pdus(evs), nil
}

// eventsByIDs reads events in the order of ids.
func (f *Federation) eventsByIDs(ctx context.Context, ids []string) ([]json.RawMessage, error) {
	if len(ids) == 0 {
		return []json.RawMessage{}, nil
	}
	evs, err := f.reader.Events(ctx, ids, false)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]json.RawMessage, len(evs))
	for _, ev := range evs {
		byID[ev.EventID] = ev.JSON
	}
	out := make([]json.RawMessage, 0, len(ids))
	for _, id := range ids {
		if j, ok := byID[id]; ok {
			out = append(out, j)
		}
	}
	return out, nil
}

// txnResponse is the Transaction shape /event and /backfill answer with.
func (f *Federation) txnResponse(evs []json.RawMessage) map[string]any {
	return map[string]any{"origin": f.serverName, "origin_server_ts": time.Now().UnixMilli(), "pdus": evs}
}

func (f *Federation) onEvent(r *InboundRequest) (any, error) {
	ctx := r.HTTP.Context()
	eventID := r.HTTP.PathValue("eventId")
	evs, err := f.reader.Events(ctx, []string{eventID}, false)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		return nil, mxerr.NotFound("event %s is unknown here", eventID)
	}
	if err := f.roomAccess(ctx, evs[0].RoomID, r.Origin); err != nil {
		return nil, err
	}
	out, err := f.visiblePDUs(ctx, r.Origin, evs)
	if err != nil {
		return nil, err
	}
	return f.txnResponse(out), nil
}

// stateAt reads the state before the event_id parameter and its auth
// chain, as event IDs.
func (f *Federation) stateAt(r *InboundRequest) (state, authChain []string, err error) {
	ctx := r.HTTP.Context()
	roomID := r.HTTP.PathValue("roomId")
	eventID := r.HTTP.URL.Query().Get("event_id")
	if eventID == "" {
		return nil, nil, mxerr.MissingParam("event_id is required")
	}
	if err := f.roomAccess(ctx, roomID, r.Origin); err != nil {
		return nil, nil, err
	}
	evs, err := f.reader.Events(ctx, []string{eventID}, false)
	if err != nil {
		return nil, nil, err
	}
	if len(evs) == 0 || evs[0].RoomID != roomID {
		return nil, nil, mxerr.NotFound("event %s is unknown in %s", eventID, roomID)
	}
	return f.reader.StateBefore(ctx, roomID, eventID)
}

// onState answers the state before an event. A server that may not see
// the event gets the state redacted: what the auth rules need, not the
// room's name, topic or members' profiles of that time. (/state_ids gives
// IDs alone, which reveal nothing.)
func (f *Federation) onState(r *InboundRequest) (any, error) {
	state, chain, err := f.stateAt(r)
	if err != nil {
		return nil, err
	}
	ctx := r.HTTP.Context()
	stateEvs, err := f.eventsByIDs(ctx, state)
	if err != nil {
		return nil, err
	}
	chainEvs, err := f.eventsByIDs(ctx, chain)
	if err != nil {
		return nil, err
	}
	roomID, eventID := r.HTTP.PathValue("roomId"), r.HTTP.URL.Query().Get("event_id")
	visible, err := f.reader.VisibleToServer(ctx, roomID, r.Origin, []string{eventID})
	if err != nil {
		return nil, err
	}
	if !visible[eventID] {
		version, _, err := f.reader.RoomVersion(ctx, roomID)
		if err != nil {
			return nil, err
		}
		for i, ev := range stateEvs {
			if stateEvs[i], err = redactPDU(version, ev); err != nil {
				return nil, err
			}
		}
	}
	return map[string]any{"pdus": stateEvs, "auth_chain": chainEvs}, nil
}

func (f *Federation) onStateIDs(r *InboundRequest) (any, error) {
	state, chain, err := f.stateAt(r)
	if err != nil {
		return nil, err
	}
	return map[string]any{"pdu_ids": nonNil(state), "auth_chain_ids": nonNil(chain)}, nil
}

func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

func (f *Federation) onEventAuth(r *InboundRequest) (any, error) {
	ctx := r.HTTP.Context()
	roomID, eventID := r.HTTP.PathValue("roomId"), r.HTTP.PathValue("eventId")
	if err := f.roomAccess(ctx, roomID, r.Origin); err != nil {
		return nil, err
	}
	evs, err := f.reader.Events(ctx, []string{eventID}, true)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 || evs[0].RoomID != roomID {
		return nil, mxerr.NotFound("event %s is unknown in %s", eventID, roomID)
	}
	chain, err := f.reader.AuthChain(ctx, []string{eventID})
	if err != nil {
		return nil, err
	}
	return map[string]any{"auth_chain": pdus(chain)}, nil
}

func (f *Federation) onBackfill(r *InboundRequest) (any, error) {
	ctx := r.HTTP.Context()
	roomID := r.HTTP.PathValue("roomId")
	q := r.HTTP.URL.Query()
	from := q["v"]
	if len(from) == 0 {
		return nil, mxerr.MissingParam("v is required")
	}
	limit, err := intParam(q, "limit", 0)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, mxerr.MissingParam("limit is required and must be positive")
	}
	if err := f.roomAccess(ctx, roomID, r.Origin); err != nil {
		return nil, err
	}
	evs, err := f.reader.Backfill(ctx, roomID, from, min(limit, maxBackfillLimit))
	if err != nil {
		return nil, err
	}
	out, err := f.visiblePDUs(ctx, r.Origin, evs)
	if err != nil {
		return nil, err
	}
	return f.txnResponse(out), nil
}

// intParam reads an integer query parameter, def when absent.
func intParam(q url.Values, name string, def int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, mxerr.InvalidParam("%s must be an integer", name)
	}
	return n, nil
}

func (f *Federation) onGetMissingEvents(r *InboundRequest) (any, error) {
	ctx := r.HTTP.Context()
	roomID := r.HTTP.PathValue("roomId")
	var body struct {
		Limit          *int     `json:"limit"`
		MinDepth       int64    `json:"min_depth"`
		EarliestEvents []string `json:"earliest_events"`
		LatestEvents   []string `json:"latest_events"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	if body.EarliestEvents == nil || len(body.LatestEvents) == 0 {
		return nil, mxerr.BadJSON("earliest_events and latest_events are required")
	}
	limit := defaultMissingEvents
	if body.Limit != nil {
		limit = *body.Limit
	}
	if limit <= 0 {
		return map[string]any{"events": []json.RawMessage{}}, nil
	}
	if err := f.roomAccess(ctx, roomID, r.Origin); err != nil {
		return nil, err
	}
	evs, err := f.reader.MissingEvents(ctx, roomID, body.EarliestEvents, body.LatestEvents, min(limit, maxMissingEventsLimit), body.MinDepth)
	if err != nil {
		return nil, err
	}
	out, err := f.visiblePDUs(ctx, r.Origin, evs)
	if err != nil {
		return nil, err
	}
	return map[string]any{"events": out}, nil
}
