package clientapi

import (
	"encoding/json"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
)

const maxTxnIDLength = 255

func (c *ClientAPI) sendMessage(req *httputil.Request) (any, error) {
	txnID := req.PathValue("txnId")
	if txnID == "" || len(txnID) > maxTxnIDLength {
		return nil, mxerr.InvalidParam("txnId must be 1 to %d bytes", maxTxnIDLength)
	}
	return c.send(req, nil, txnID)
}

func (c *ClientAPI) sendState(req *httputil.Request) (any, error) {
	stateKey := req.PathValue("stateKey")
	return c.send(req, &stateKey, "")
}

func (c *ClientAPI) send(req *httputil.Request, stateKey *string, txnID string) (any, error) {
	if err := refuseSuspended(req); err != nil { // misc_admin.go
		return nil, err
	}
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	eventType := req.PathValue("eventType")
	if eventType == "" || len(eventType) > 255 {
		return nil, mxerr.InvalidParam("event type must be 1 to 255 bytes")
	}
	var content json.RawMessage
	if err := httputil.DecodeJSON(req.Request, &content); err != nil {
		return nil, err
	}
	resp, err := roomserver.SendEvent.Call(req.Context(), c.bus, &roomserver.SendEventRequest{
		Sender:   req.Device.UserID,
		DeviceID: req.Device.DeviceID,
		TxnID:    txnID,
		RoomID:   roomID,
		Type:     eventType,
		StateKey: stateKey,
		Content:  content,
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"event_id": resp.EventID}, nil
}

func (c *ClientAPI) getState(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	resp, err := roomserver.QueryState.Call(req.Context(), c.bus, &roomserver.QueryStateRequest{UserID: req.Device.UserID, RoomID: roomID})
	if err != nil {
		return nil, err
	}
	if resp.Events == nil {
		resp.Events = []roomserver.ClientEvent{}
	}
	return resp.Events, nil
}

// getStateEvent returns the content of one state event, or the whole event
// with ?format=event.
func (c *ClientAPI) getStateEvent(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	stateKey := req.PathValue("stateKey")
	resp, err := roomserver.QueryState.Call(req.Context(), c.bus, &roomserver.QueryStateRequest{
		UserID: req.Device.UserID, RoomID: roomID, Type: req.PathValue("eventType"), StateKey: &stateKey,
	})
	if err != nil {
		return nil, err
	}
	if len(resp.Events) == 0 {
		return nil, mxerr.NotFound("no such state event")
	}
	if req.URL.Query().Get("format") == "event" {
		return resp.Events[0], nil
	}
	return resp.Events[0].Content, nil
}

func (c *ClientAPI) getEvent(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	eventID := req.PathValue("eventId")
	if !mxid.EventID(eventID) {
		return nil, mxerr.InvalidParam("%q is not an event ID", eventID)
	}
	resp, err := roomserver.QueryEvent.Call(req.Context(), c.bus, &roomserver.QueryEventRequest{UserID: req.Device.UserID, RoomID: roomID, EventID: eventID})
	if err != nil {
		return nil, err
	}
	return resp.Event, nil
}
