package syncapi

import (
	"encoding/json"
	"time"

	"github.com/chappe-matrix/chappe/roomserver"
	"github.com/chappe-matrix/chappe/userapi"
)

// formatter turns stored events into what one device is sent: unsigned.age
// computed at the time of the response, unsigned.transaction_id on the
// events this very device sent (so the client can replace its local echo),
// and, inside /sync where the room is the key, no room_id.
type formatter struct {
	device     *userapi.Device
	nowMS      int64
	keepRoomID bool
}

func newFormatter(device *userapi.Device, keepRoomID bool) formatter {
	return formatter{device: device, nowMS: time.Now().UnixMilli(), keepRoomID: keepRoomID}
}

// stream formats events read from the stream, keeping their order.
func (f formatter) stream(evs []roomserver.StreamEvent) []roomserver.ClientEvent {
	out := make([]roomserver.ClientEvent, 0, len(evs))
	for i := range evs {
		txnID := ""
		if evs[i].TxnID != "" && evs[i].SenderDeviceID == f.device.DeviceID && evs[i].Event.Sender == f.device.UserID {
			txnID = evs[i].TxnID
		}
		out = append(out, f.event(evs[i].Event, txnID))
	}
	return out
}

// state formats state events.
func (f formatter) state(evs []roomserver.ClientEvent) []roomserver.ClientEvent {
	out := make([]roomserver.ClientEvent, 0, len(evs))
	for _, ev := range evs {
		out = append(out, f.event(ev, ""))
	}
	return out
}

func (f formatter) event(ev roomserver.ClientEvent, txnID string) roomserver.ClientEvent {
	if !f.keepRoomID {
		ev.RoomID = ""
	}
	ev.Unsigned = withUnsigned(ev.Unsigned, max(f.nowMS-ev.OriginServerTS, 0), txnID)
	return ev
}

// withUnsigned sets age and, if given, transaction_id in an event's unsigned
// object, keeping what the roomserver put there (prev_content,
// redacted_because...).
func withUnsigned(raw json.RawMessage, age int64, txnID string) json.RawMessage {
	var fields map[string]json.RawMessage
	if len(raw) > 0 && json.Unmarshal(raw, &fields) != nil {
		fields = nil // not an object: replace it
	}
	if fields == nil { // absent, null or replaced
		fields = map[string]json.RawMessage{}
	}
	fields["age"], _ = json.Marshal(age)
	if txnID != "" {
		fields["transaction_id"], _ = json.Marshal(txnID)
	}
	out, _ := json.Marshal(fields) // a map of valid JSON values always encodes
	return out
}
