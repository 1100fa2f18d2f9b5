package syncapi

import (
	"encoding/json"

	"github.com/chappe-matrix/chappe/internal/bus"
)

// syncapi stores to-device messages and device-list changes with sy_stream
// positions, so /sync delivers them with everything else. clientapi
// reaches them through these endpoints.
var (
	// SendToDevice stores to-device messages for local devices.
	SendToDevice = bus.Endpoint[SendToDeviceRequest, SendToDeviceResponse]{Subject: "syncapi.send_to_device"}
	// QueryKeyChanges serves /keys/changes: its tokens are sync tokens.
	QueryKeyChanges = bus.Endpoint[KeyChangesRequest, KeyChangesResponse]{Subject: "syncapi.key_changes"}
)

// SendToDeviceRequest is one /sendToDevice transaction; Messages maps a
// local user to device ID (or "*": every device) to content.
type SendToDeviceRequest struct {
	Sender       string                                `json:"sender"`
	SenderDevice string                                `json:"sender_device"`
	TxnID        string                                `json:"txn_id"`
	Type         string                                `json:"type"`
	Messages     map[string]map[string]json.RawMessage `json:"messages"`
}

type SendToDeviceResponse struct{}

// KeyChangesRequest: From and To are /sync tokens.
type KeyChangesRequest struct {
	UserID string `json:"user_id"`
	From   string `json:"from"`
	To     string `json:"to"`
}

type KeyChangesResponse struct {
	Changed []string `json:"changed"`
	Left    []string `json:"left"`
}
