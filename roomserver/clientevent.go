package roomserver

import (
	"encoding/json"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// pduFields are the fields of a PDU that the client format keeps.
type pduFields struct {
	RoomID         string          `json:"room_id"`
	Sender         string          `json:"sender"`
	Type           string          `json:"type"`
	StateKey       *string         `json:"state_key"`
	Content        json.RawMessage `json:"content"`
	OriginServerTS int64           `json:"origin_server_ts"`
	Redacts        string          `json:"redacts"`
}

// ToClientEvent converts a PDU (as stored, or as OutputEvent.Event) to the
// client-server format. redacted applies the room version's redaction
// algorithm first. roomID fills room_id where the PDU has none (the create
// event of a room version 12 room). Unsigned data (age, prev_content,
// redacted_because) is the caller's: the EventReader adds prev_content and
// redacted_because; age is left to whoever serves the client.
func ToClientEvent(roomVersion, roomID, eventID string, pdu []byte, redacted bool) (ClientEvent, error) {
	version, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(roomVersion))
	if err != nil {
		return ClientEvent{}, err
	}
	return toClientEvent(version, roomID, eventID, pdu, redacted)
}

// ClientEvent converts a published event to the client-server format.
func (o *OutputEvent) ClientEvent() (ClientEvent, error) {
	return ToClientEvent(o.RoomVersion, o.RoomID, o.EventID, o.Event, false)
}

func toClientEvent(version gomatrixserverlib.IRoomVersion, roomID, eventID string, pdu []byte, redacted bool) (ClientEvent, error) {
	if redacted {
		var err error
		if pdu, err = version.RedactEventJSON(pdu); err != nil {
			return ClientEvent{}, fmt.Errorf("redact %s: %w", eventID, err)
		}
	}
	var f pduFields
	if err := json.Unmarshal(pdu, &f); err != nil {
		return ClientEvent{}, fmt.Errorf("parse %s: %w", eventID, err)
	}
	if f.RoomID == "" {
		f.RoomID = roomID
	}
	if len(f.Content) == 0 || string(f.Content) == "null" {
		f.Content = json.RawMessage("{}")
	}
	ce := ClientEvent{
		Content:        f.Content,
		EventID:        eventID,
		OriginServerTS: f.OriginServerTS,
		RoomID:         f.RoomID,
		Sender:         f.Sender,
		StateKey:       f.StateKey,
		Type:           f.Type,
		Redacts:        f.Redacts,
	}
	if ce.Type == spec.MRoomRedaction && ce.Redacts == "" {
		// Room version 11 moved redacts into content; clients still read
		// the top-level key.
		ce.Redacts = redactsInContent(f.Content)
	}
	return ce, nil
}

func redactsInContent(content json.RawMessage) string {
	var c struct {
		Redacts string `json:"redacts"`
	}
	_ = json.Unmarshal(content, &c)
	return c.Redacts
}

// strippedState is an event of an invite's stripped state.
type strippedState struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
	Sender   string          `json:"sender"`
}
