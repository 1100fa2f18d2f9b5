// Package userapi owns accounts, devices, access tokens and profiles. This
// file is its public face: the commands and queries other components send
// over the bus.
package userapi

import (
	"github.com/chappe-matrix/chappe/internal/bus"
)

var (
	// QueryAccessToken resolves an access token to its device; every
	// authenticated client request goes through it.
	QueryAccessToken = bus.Endpoint[QueryAccessTokenRequest, QueryAccessTokenResponse]{Subject: "userapi.query_access_token"}
	Login            = bus.Endpoint[LoginRequest, LoginResponse]{Subject: "userapi.login"}
	Register         = bus.Endpoint[RegisterRequest, LoginResponse]{Subject: "userapi.register"}
	QueryAvailable   = bus.Endpoint[QueryAvailableRequest, QueryAvailableResponse]{Subject: "userapi.query_available"}
	Logout           = bus.Endpoint[LogoutRequest, LogoutResponse]{Subject: "userapi.logout"}
	QueryProfile     = bus.Endpoint[QueryProfileRequest, Profile]{Subject: "userapi.query_profile"}
	// CreateNonce and ConsumeNonce back the shared-secret registration
	// endpoint; nonces live in the database so any clientapi process can
	// check one another process issued.
	CreateNonce  = bus.Endpoint[CreateNonceRequest, CreateNonceResponse]{Subject: "userapi.create_nonce"}
	ConsumeNonce = bus.Endpoint[ConsumeNonceRequest, ConsumeNonceResponse]{Subject: "userapi.consume_nonce"}
	// Deactivate marks an account deactivated (login refused from then on)
	// and deletes all its devices and tokens.
	Deactivate = bus.Endpoint[DeactivateRequest, DeactivateResponse]{Subject: "userapi.deactivate"}
)

// TokensRevokedSubject is the core NATS subject (before bus.Subject
// prefixing) on which the userapi publishes a TokensRevoked message each
// time access tokens stop being valid (logout, device reuse, deactivation),
// so that every process caching token lookups evicts them at once.
const TokensRevokedSubject = "userapi.token_revoked"

// TokensRevoked lists the SHA-256 hashes of revoked access tokens.
type TokensRevoked struct {
	TokenHashes [][]byte `json:"token_hashes"`
}

// Device is an authenticated session of a user.
type Device struct {
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name,omitempty"`
	IsAdmin     bool   `json:"is_admin,omitempty"`
	IsGuest     bool   `json:"is_guest,omitempty"`
}

type QueryAccessTokenRequest struct {
	AccessToken string `json:"access_token"`
}

// QueryAccessTokenResponse has a nil Device when the token is unknown.
type QueryAccessTokenResponse struct {
	Device *Device `json:"device,omitempty"`
}

// LoginRequest logs in with a password. User is a localpart or a full user
// ID. DeviceID reuses a device (its old tokens are revoked) or, when empty,
// a new device is created.
type LoginRequest struct {
	User               string `json:"user"`
	Password           string `json:"password"`
	DeviceID           string `json:"device_id,omitempty"`
	InitialDisplayName string `json:"initial_device_display_name,omitempty"`
}

// LoginResponse is the result of a login or a registration. AccessToken
// and DeviceID are empty when registration inhibited login.
type LoginResponse struct {
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id,omitempty"`
	AccessToken string `json:"access_token,omitempty"`
}

// RegisterRequest creates an account. The caller has already checked that
// registration is allowed (open registration, shared secret or admin CLI).
type RegisterRequest struct {
	Localpart          string `json:"localpart"`
	Password           string `json:"password,omitempty"` // empty: no password login
	Admin              bool   `json:"admin,omitempty"`
	DisplayName        string `json:"displayname,omitempty"` // default: the localpart
	DeviceID           string `json:"device_id,omitempty"`
	InitialDisplayName string `json:"initial_device_display_name,omitempty"`
	InhibitLogin       bool   `json:"inhibit_login,omitempty"`
}

type QueryAvailableRequest struct {
	Localpart string `json:"localpart"`
}

type QueryAvailableResponse struct {
	Available bool `json:"available"`
}

// LogoutRequest deletes one device (and its tokens), or all of a user's
// devices when All is set.
type LogoutRequest struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id,omitempty"`
	All      bool   `json:"all,omitempty"`
}

type LogoutResponse struct{}

type QueryProfileRequest struct {
	UserID string `json:"user_id"`
}

// Profile is a user's public profile; M_NOT_FOUND when there is no such user.
type Profile struct {
	DisplayName string `json:"displayname,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

type CreateNonceRequest struct{}

type CreateNonceResponse struct {
	Nonce string `json:"nonce"`
}

type ConsumeNonceRequest struct {
	Nonce string `json:"nonce"`
}

// ConsumeNonceResponse says whether the nonce was issued, unexpired and
// unused; it is used up either way.
type ConsumeNonceResponse struct {
	Valid bool `json:"valid"`
}

type DeactivateRequest struct {
	UserID string `json:"user_id"`
}

type DeactivateResponse struct{}
