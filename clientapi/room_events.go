package clientapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
)

// Redactions, context, timestamps, relations and threads.

const (
	defaultContextLimit   = 10
	maxContextLimit       = 100
	defaultRelationsLimit = 50
	maxRelationsLimit     = 1000
	defaultThreadsLimit   = 20
	maxThreadsLimit       = 100
	maxFilterBytes        = 8192
)

func (c *ClientAPI) redact(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	eventID, err := eventIDParam(req)
	if err != nil {
		return nil, err
	}
	txnID := req.PathValue("txnId")
	if txnID == "" || len(txnID) > maxTxnIDLength {
		return nil, mxerr.InvalidParam("txnId must be 1 to %d bytes", maxTxnIDLength)
	}
	var body struct {
		Reason string `json:"reason,omitempty"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if len(body.Reason) > 1024 {
		return nil, mxerr.InvalidParam("reason is longer than 1024 bytes")
	}
	content, _ := json.Marshal(body) // a struct of one string always encodes
	resp, err := roomserver.SendEvent.Call(req.Context(), c.bus, &roomserver.SendEventRequest{
		Sender: req.Device.UserID, DeviceID: req.Device.DeviceID,
		// Transaction IDs are scoped per endpoint: a redaction's cannot
		// collide with a message's.
		TxnID:  "redact/" + txnID,
		RoomID: roomID, Type: "m.room.redaction", Content: content, Redacts: eventID,
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"event_id": resp.EventID}, nil
}

// parseEventFilter reads the filter parameter of /context: a
// RoomEventFilter as JSON, of which the type and sender lists and
// lazy_load_members apply.
func parseEventFilter(req *httputil.Request) (*roomserver.EventFilter, error) {
	raw := req.URL.Query().Get("filter")
	if raw == "" {
		return nil, nil
	}
	if len(raw) > maxFilterBytes {
		return nil, mxerr.InvalidParam("filter is longer than %d bytes", maxFilterBytes)
	}
	var f roomserver.EventFilter
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		return nil, mxerr.InvalidParam("filter: %v", err)
	}
	return &f, nil
}

type contextResponse struct {
	Start        string                   `json:"start"`
	End          string                   `json:"end"`
	Event        roomserver.ClientEvent   `json:"event"`
	EventsBefore []roomserver.ClientEvent `json:"events_before"`
	EventsAfter  []roomserver.ClientEvent `json:"events_after"`
	State        []roomserver.ClientEvent `json:"state"`
}

func (c *ClientAPI) eventContext(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	eventID, err := eventIDParam(req)
	if err != nil {
		return nil, err
	}
	limit, err := queryLimit(req, "limit", defaultContextLimit, maxContextLimit)
	if err != nil {
		return nil, err
	}
	filter, err := parseEventFilter(req)
	if err != nil {
		return nil, err
	}
	resp, err := roomserver.QueryContext.Call(req.Context(), c.bus, &roomserver.QueryContextRequest{
		UserID: req.Device.UserID, RoomID: roomID, EventID: eventID, Limit: limit, Filter: filter,
	})
	if err != nil {
		return nil, err
	}
	out := &contextResponse{
		Start: formatPosToken("s", resp.StartPos), End: formatPosToken("s", resp.EndPos),
		Event: resp.Event, EventsBefore: resp.EventsBefore, EventsAfter: resp.EventsAfter, State: resp.State,
	}
	if out.State == nil {
		out.State = []roomserver.ClientEvent{}
	}
	return out, nil
}

func (c *ClientAPI) timestampToEvent(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	q := req.URL.Query()
	r := &roomserver.TimestampToEventRequest{UserID: req.Device.UserID, RoomID: roomID}
	if r.Backwards, err = httputil.Direction(q, ""); err != nil {
		return nil, err
	}
	ts := q.Get("ts")
	if ts == "" {
		return nil, mxerr.MissingParam("ts is required")
	}
	if r.TS, err = strconv.ParseInt(ts, 10, 64); err != nil || r.TS < 0 {
		return nil, mxerr.InvalidParam("ts: %q is not a timestamp in milliseconds", ts)
	}
	// The local history answers first: it also tells whether the user
	// may read the room at all (M_FORBIDDEN, never asked further).
	local, err := roomserver.TimestampToEvent.Call(req.Context(), c.bus, r)
	if me, ok := mxerr.As(err); err != nil && (!ok || me.Code != "M_NOT_FOUND") {
		return nil, err
	}
	remote, ferr := c.remoteTimestamp(req, r, local)
	if remote != nil {
		return remote, ferr
	}
	return local, err
}

// remoteTimestamp asks the federation for an event closer to the
// timestamp than local (nil: none found locally), which it does when the
// room's history stored here starts after the timestamp: the spec's
// fallback to the other servers. It returns nil to keep the local answer:
// nothing closer, federation off, or the other servers failing (logged).
// An answer the federation backfilled into the room's history is read
// from there again, which applies the user's history visibility; one
// left an outlier (too far back to backfill) is as the other servers
// gave it, which they only give when this server may see it.
func (c *ClientAPI) remoteTimestamp(req *httputil.Request, r *roomserver.TimestampToEventRequest, local *roomserver.TimestampToEventResponse) (*roomserver.TimestampToEventResponse, error) {
	q := &fedapi.TimestampToEventRequest{RoomID: r.RoomID, TS: r.TS, Backwards: r.Backwards}
	if local != nil {
		q.Local = &fedapi.TimestampedEvent{EventID: local.EventID, OriginServerTS: local.OriginServerTS}
	}
	resp, err := fedapi.TimestampToEvent.Call(req.Context(), c.bus, q)
	if err != nil {
		if me, ok := mxerr.As(err); !ok || (me.Code != "M_NOT_FOUND" && me.Status != http.StatusServiceUnavailable) {
			c.log.Info("timestamp_to_event: the other servers could not be asked", "room", r.RoomID, "err", err)
		}
		return nil, nil
	}
	if resp.InHistory {
		return roomserver.TimestampToEvent.Call(req.Context(), c.bus, r)
	}
	return &roomserver.TimestampToEventResponse{EventID: resp.EventID, OriginServerTS: resp.OriginServerTS}, nil
}

type relationsResponse struct {
	Chunk          []roomserver.ClientEvent `json:"chunk"`
	NextBatch      string                   `json:"next_batch,omitempty"`
	RecursionDepth int                      `json:"recursion_depth,omitempty"`
}

func (c *ClientAPI) relations(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	eventID, err := eventIDParam(req)
	if err != nil {
		return nil, err
	}
	q := req.URL.Query()
	r := &roomserver.QueryRelationsRequest{UserID: req.Device.UserID, RoomID: roomID, EventID: eventID,
		RelType: req.PathValue("relType"), EventType: req.PathValue("eventType")}
	if len(r.RelType) > 255 || len(r.EventType) > 255 {
		return nil, mxerr.InvalidParam("relation and event types are at most 255 bytes")
	}
	backwards, err := httputil.Direction(q, "b")
	if err != nil {
		return nil, err
	}
	r.Forwards = !backwards
	if r.From, err = parsePosToken("from", "s", q.Get("from")); err != nil {
		return nil, err
	}
	if r.To, err = parsePosToken("to", "s", q.Get("to")); err != nil {
		return nil, err
	}
	if r.Limit, err = queryLimit(req, "limit", defaultRelationsLimit, maxRelationsLimit); err != nil {
		return nil, err
	}
	if r.Recurse, err = queryBool(req, "recurse"); err != nil {
		return nil, err
	}
	resp, err := roomserver.QueryRelations.Call(req.Context(), c.bus, r)
	if err != nil {
		return nil, err
	}
	out := &relationsResponse{Chunk: resp.Chunk, RecursionDepth: resp.RecursionDepth}
	if out.Chunk == nil {
		out.Chunk = []roomserver.ClientEvent{}
	}
	if resp.NextPos > 0 {
		out.NextBatch = formatPosToken("s", resp.NextPos)
	}
	return out, nil
}

func (c *ClientAPI) threads(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	q := req.URL.Query()
	r := &roomserver.QueryThreadsRequest{UserID: req.Device.UserID, RoomID: roomID}
	switch q.Get("include") {
	case "", "all":
	case "participated":
		r.Participated = true
	default:
		return nil, mxerr.InvalidParam("include: %q is neither all nor participated", q.Get("include"))
	}
	if r.From, err = parsePosToken("from", "t", q.Get("from")); err != nil {
		return nil, err
	}
	if r.Limit, err = queryLimit(req, "limit", defaultThreadsLimit, maxThreadsLimit); err != nil {
		return nil, err
	}
	resp, err := roomserver.QueryThreads.Call(req.Context(), c.bus, r)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"chunk": resp.Chunk}
	if resp.NextPos > 0 {
		out["next_batch"] = formatPosToken("t", resp.NextPos)
	}
	return out, nil
}
