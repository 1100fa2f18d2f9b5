package userapi

import (
	"encoding/json"

	"github.com/chappe-matrix/chappe/internal/bus"
)

// DehydratedDevice manages a user's dehydrated device (MSC3814, used by
// Element's Rust crypto): a device whose private keys the client keeps on
// the server, encrypted, so that it receives room keys while the user has
// no session, and that a new session reads later (dehydrated.go).
var DehydratedDevice = bus.Endpoint[DehydratedDeviceRequest, DehydratedDeviceResponse]{Subject: "userapi.dehydrated_device"}

// Dehydrated device operations (DehydratedDeviceRequest.Op).
const (
	DehydratedPut    = "put"
	DehydratedGet    = "get"
	DehydratedDelete = "delete"
)

// DehydratedDeviceRequest: put stores a new dehydrated device with its
// keys (the fields of /keys/upload), replacing the user's previous one;
// get reads it; delete removes it.
type DehydratedDeviceRequest struct {
	Op           string                     `json:"op"`
	UserID       string                     `json:"user_id"`
	DeviceID     string                     `json:"device_id,omitempty"`
	DeviceData   json.RawMessage            `json:"device_data,omitempty"`
	DisplayName  string                     `json:"display_name,omitempty"`
	DeviceKeys   json.RawMessage            `json:"device_keys,omitempty"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys,omitempty"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys,omitempty"`
}

// DehydratedDeviceResponse: the device's ID (and its data for get).
// Removed is the ID of a dehydrated device that put replaced or delete
// deleted, whose to-device messages the caller has syncapi delete.
type DehydratedDeviceResponse struct {
	DeviceID   string          `json:"device_id"`
	DeviceData json.RawMessage `json:"device_data,omitempty"`
	Removed    string          `json:"removed,omitempty"`
}
