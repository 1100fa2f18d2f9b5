package userapi

import (
	"encoding/json"

	"github.com/chappe-matrix/chappe/internal/bus"
)

// The end-to-end encryption surface: device keys, one-time and fallback
// keys, cross-signing keys and signatures, server-side key backups. The
// userapi stores them (ua_ tables, keys_schema.go); clientapi validates the
// HTTP shapes and calls these endpoints.
var (
	UploadKeys         = bus.Endpoint[UploadKeysRequest, UploadKeysResponse]{Subject: "userapi.upload_keys"}
	QueryKeys          = bus.Endpoint[QueryKeysRequest, QueryKeysResponse]{Subject: "userapi.query_keys"}
	ClaimKeys          = bus.Endpoint[ClaimKeysRequest, ClaimKeysResponse]{Subject: "userapi.claim_keys"}
	QueryKeyCounts     = bus.Endpoint[QueryKeyCountsRequest, QueryKeyCountsResponse]{Subject: "userapi.query_key_counts"}
	QueryCrossSigning  = bus.Endpoint[QueryCrossSigningRequest, QueryCrossSigningResponse]{Subject: "userapi.query_cross_signing"}
	UploadCrossSigning = bus.Endpoint[UploadCrossSigningRequest, UploadCrossSigningResponse]{Subject: "userapi.upload_cross_signing"}
	UploadSignatures   = bus.Endpoint[UploadSignaturesRequest, UploadSignaturesResponse]{Subject: "userapi.upload_signatures"}
	// Server-side key backup (keys_backup*.go).
	BackupVersion = bus.Endpoint[BackupVersionRequest, BackupVersionResponse]{Subject: "userapi.backup_version"}
	BackupKeys    = bus.Endpoint[BackupKeysRequest, BackupKeysResponse]{Subject: "userapi.backup_keys"}
)

// KeyChanges is the stream of users whose device list or cross-signing
// keys changed (key upload, device deletion, cross-signing upload, a new
// signature). Each change is first written to ua_key_changes in the
// transaction that makes it, then published by keys_outbox.go, so a crash
// between the two delays the announcement instead of losing it. syncapi
// records the changes with its own positions (durable consumer).
var KeyChanges = bus.Topic[KeyChange]{Stream: "KEY_CHANGES", Subject: "userapi.key_changes"}

// KeyChange says that UserID's devices or cross-signing keys changed.
type KeyChange struct {
	UserID string `json:"user_id"`
}

// UploadKeysRequest is /keys/upload from one device. DeviceKeys, when set,
// has already been checked against the device by clientapi for shape;
// the userapi checks the self-signature and refuses a change.
type UploadKeysRequest struct {
	UserID       string                     `json:"user_id"`
	DeviceID     string                     `json:"device_id"`
	DeviceKeys   json.RawMessage            `json:"device_keys,omitempty"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys,omitempty"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys,omitempty"`
}

type UploadKeysResponse struct {
	OneTimeKeyCounts map[string]int `json:"one_time_key_counts"`
}

// QueryKeysRequest asks for the keys of local users. DeviceKeys maps a
// user to the devices wanted (empty: all). Requester decides whether the
// user-signing key of the requester is returned (it is private to its
// owner).
type QueryKeysRequest struct {
	Requester  string              `json:"requester"`
	DeviceKeys map[string][]string `json:"device_keys"`
}

type QueryKeysResponse struct {
	DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
	MasterKeys      map[string]json.RawMessage            `json:"master_keys"`
	SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys"`
	UserSigningKeys map[string]json.RawMessage            `json:"user_signing_keys"`
}

// ClaimKeysRequest maps user → device → algorithm.
type ClaimKeysRequest struct {
	OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
}

type ClaimKeysResponse struct {
	OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
}

// QueryKeyCountsRequest is for /sync: the device's unclaimed one-time keys
// per algorithm and its unused fallback key algorithms.
type QueryKeyCountsRequest struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
}

type QueryKeyCountsResponse struct {
	OneTimeKeyCounts   map[string]int `json:"one_time_key_counts"`
	UnusedFallbackKeys []string       `json:"unused_fallback_key_types"`
}

type QueryCrossSigningRequest struct {
	UserID string `json:"user_id"`
}

// QueryCrossSigningResponse has the stored keys (nil when absent), without
// the signatures uploaded later.
type QueryCrossSigningResponse struct {
	Master      json.RawMessage `json:"master,omitempty"`
	SelfSigning json.RawMessage `json:"self_signing,omitempty"`
	UserSigning json.RawMessage `json:"user_signing,omitempty"`
}

// UploadCrossSigningRequest is /keys/device_signing/upload after
// user-interactive auth.
type UploadCrossSigningRequest struct {
	UserID      string          `json:"user_id"`
	Master      json.RawMessage `json:"master_key,omitempty"`
	SelfSigning json.RawMessage `json:"self_signing_key,omitempty"`
	UserSigning json.RawMessage `json:"user_signing_key,omitempty"`
}

type UploadCrossSigningResponse struct{}

// UploadSignaturesRequest is /keys/signatures/upload: user → key ID or
// device ID → signed object.
type UploadSignaturesRequest struct {
	UserID     string                                `json:"user_id"`
	Signatures map[string]map[string]json.RawMessage `json:"signatures"`
}

// UploadSignaturesResponse lists per-item failures (errcode, error).
type UploadSignaturesResponse struct {
	Failures map[string]map[string]map[string]string `json:"failures"`
}

// Backup operations (BackupVersionRequest.Op).
const (
	BackupCreate = "create"
	BackupGet    = "get"
	BackupUpdate = "update"
	BackupDelete = "delete"
)

// BackupVersionRequest manages backup versions; Version "" with Get means
// the current one.
type BackupVersionRequest struct {
	Op        string          `json:"op"`
	UserID    string          `json:"user_id"`
	Version   string          `json:"version,omitempty"`
	Algorithm string          `json:"algorithm,omitempty"`
	AuthData  json.RawMessage `json:"auth_data,omitempty"`
}

type BackupVersionResponse struct {
	Algorithm string          `json:"algorithm,omitempty"`
	AuthData  json.RawMessage `json:"auth_data,omitempty"`
	Count     int64           `json:"count"`
	ETag      string          `json:"etag"`
	Version   string          `json:"version"`
}

// BackupKeyData is one session's backed-up key (KeyBackupData).
type BackupKeyData struct {
	FirstMessageIndex int64           `json:"first_message_index"`
	ForwardedCount    int64           `json:"forwarded_count"`
	IsVerified        bool            `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

// BackupKeysRequest reads (Op get), writes (put) or deletes (delete) keys
// of a backup version, for all rooms, one room (RoomID) or one session.
type BackupKeysRequest struct {
	Op        string                              `json:"op"`
	UserID    string                              `json:"user_id"`
	Version   string                              `json:"version"`
	RoomID    string                              `json:"room_id,omitempty"`
	SessionID string                              `json:"session_id,omitempty"`
	Keys      map[string]map[string]BackupKeyData `json:"keys,omitempty"` // room → session → key (put)
}

// BackupKeysResponse: Keys for get, ETag and Count after put and delete.
type BackupKeysResponse struct {
	Keys  map[string]map[string]BackupKeyData `json:"keys,omitempty"`
	ETag  string                              `json:"etag"`
	Count int64                               `json:"count"`
}
