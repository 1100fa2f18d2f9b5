package fedapi

import (
	"encoding/json"

	"github.com/chappe-matrix/chappe/internal/bus"
)

// SendToDevice queues the to-device messages of one /sendToDevice for the
// users of one other server (an m.direct_to_device EDU).
var SendToDevice = bus.Endpoint[SendToDeviceRequest, SendToDeviceResponse]{Subject: "federation.send_to_device"}

type SendToDeviceRequest struct {
	Server string `json:"server"`
	Sender string `json:"sender"`
	Type   string `json:"type"`
	TxnID  string `json:"txn_id"`
	// Messages: user ID (of Server) -> device ID or "*" -> content.
	Messages map[string]map[string]json.RawMessage `json:"messages"`
}

type SendToDeviceResponse struct{}
