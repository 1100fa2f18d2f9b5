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

	// The account surface (api_account.go has the payloads).
	CheckPassword    = bus.Endpoint[CheckPasswordRequest, CheckPasswordResponse]{Subject: "userapi.check_password"}
	SetPassword      = bus.Endpoint[SetPasswordRequest, SetPasswordResponse]{Subject: "userapi.set_password"}
	SetProfile       = bus.Endpoint[SetProfileRequest, SetProfileResponse]{Subject: "userapi.set_profile"}
	SearchUsers      = bus.Endpoint[SearchUsersRequest, SearchUsersResponse]{Subject: "userapi.search_users"}
	QueryDevices     = bus.Endpoint[QueryDevicesRequest, QueryDevicesResponse]{Subject: "userapi.query_devices"}
	UpdateDevice     = bus.Endpoint[UpdateDeviceRequest, UpdateDeviceResponse]{Subject: "userapi.update_device"}
	DeleteDevices    = bus.Endpoint[DeleteDevicesRequest, DeleteDevicesResponse]{Subject: "userapi.delete_devices"}
	Refresh          = bus.Endpoint[RefreshRequest, LoginResponse]{Subject: "userapi.refresh"}
	CreateLoginToken = bus.Endpoint[CreateLoginTokenRequest, CreateLoginTokenResponse]{Subject: "userapi.create_login_token"}
	// UIA sessions live in the database so that any clientapi process can
	// continue a session another one began.
	CreateUIASession = bus.Endpoint[CreateUIASessionRequest, CreateUIASessionResponse]{Subject: "userapi.create_uia_session"}
	QueryUIASession  = bus.Endpoint[QueryUIASessionRequest, UIASession]{Subject: "userapi.query_uia_session"}
	CompleteUIAStage = bus.Endpoint[CompleteUIAStageRequest, UIASession]{Subject: "userapi.complete_uia_stage"}
	EndUIASession    = bus.Endpoint[EndUIASessionRequest, UIASession]{Subject: "userapi.end_uia_session"}
	// Registration tokens (the Synapse admin API and the registration stage).
	ListRegistrationTokens   = bus.Endpoint[ListRegistrationTokensRequest, ListRegistrationTokensResponse]{Subject: "userapi.list_registration_tokens"}
	QueryRegistrationToken   = bus.Endpoint[QueryRegistrationTokenRequest, RegistrationToken]{Subject: "userapi.query_registration_token"}
	CreateRegistrationToken  = bus.Endpoint[CreateRegistrationTokenRequest, RegistrationToken]{Subject: "userapi.create_registration_token"}
	UpdateRegistrationToken  = bus.Endpoint[UpdateRegistrationTokenRequest, RegistrationToken]{Subject: "userapi.update_registration_token"}
	DeleteRegistrationToken  = bus.Endpoint[QueryRegistrationTokenRequest, DeleteRegistrationTokenResponse]{Subject: "userapi.delete_registration_token"}
	CheckRegistrationToken   = bus.Endpoint[QueryRegistrationTokenRequest, CheckRegistrationTokenResponse]{Subject: "userapi.check_registration_token"}
	ReleaseRegistrationToken = bus.Endpoint[ReleaseRegistrationTokenRequest, ReleaseRegistrationTokenResponse]{Subject: "userapi.release_registration_token"}
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
	// Suspended accounts may read but not act (clientapi refuses with
	// M_USER_SUSPENDED); locked ones are refused everything but logout
	// (the router answers M_USER_LOCKED).
	Suspended bool `json:"suspended,omitempty"`
	Locked    bool `json:"locked,omitempty"`
}

type QueryAccessTokenRequest struct {
	AccessToken string `json:"access_token"`
}

// QueryAccessTokenResponse has a nil Device when the token is unknown.
type QueryAccessTokenResponse struct {
	Device *Device `json:"device,omitempty"`
	// ExpiresMS is when a refreshable token stops working (0: never).
	ExpiresMS int64 `json:"expires_ms,omitempty"`
	// Expired is set (with a nil Device) for a known token past its
	// expiry: the client should refresh, hence soft_logout.
	Expired bool `json:"expired,omitempty"`
}

// LoginRequest logs in with a password. User is a localpart or a full user
// ID. DeviceID reuses a device (its old tokens are revoked) or, when empty,
// a new device is created.
type LoginRequest struct {
	User               string `json:"user"`
	Password           string `json:"password"`
	DeviceID           string `json:"device_id,omitempty"`
	InitialDisplayName string `json:"initial_device_display_name,omitempty"`
	// LoginToken, when set, logs in with an m.login.token token instead
	// of User and Password.
	LoginToken string `json:"login_token,omitempty"`
	// RefreshToken asks for an expiring access token and a refresh token.
	RefreshToken bool `json:"refresh_token,omitempty"`
}

// LoginResponse is the result of a login or a registration. AccessToken
// and DeviceID are empty when registration inhibited login.
type LoginResponse struct {
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id,omitempty"`
	AccessToken string `json:"access_token,omitempty"`
	// RefreshToken and ExpiresInMS are set when a refresh token was asked for.
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresInMS  int64  `json:"expires_in_ms,omitempty"`
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
	RefreshToken       bool   `json:"refresh_token,omitempty"`
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
	// Erase also clears the profile (display name and avatar).
	Erase bool `json:"erase,omitempty"`
}

type DeactivateResponse struct{}
