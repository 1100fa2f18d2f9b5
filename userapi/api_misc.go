package userapi

import (
	"encoding/json"

	"github.com/chappe-matrix/chappe/internal/bus"
)

// Endpoints of the smaller client-server features: OpenID tokens,
// extended profile fields, account moderation flags and user reports.
var (
	// CreateOpenIDToken issues a token a third party (an integration
	// manager) can exchange, through federation's openid/userinfo, for
	// the user's ID; QueryOpenIDToken is that exchange.
	CreateOpenIDToken = bus.Endpoint[CreateOpenIDTokenRequest, CreateOpenIDTokenResponse]{Subject: "userapi.create_openid_token"}
	QueryOpenIDToken  = bus.Endpoint[QueryOpenIDTokenRequest, QueryOpenIDTokenResponse]{Subject: "userapi.query_openid_token"}

	// QueryProfileFields reads the extended profile fields (all but
	// displayname and avatar_url); SetProfileField writes or deletes one.
	QueryProfileFields = bus.Endpoint[QueryProfileRequest, ProfileFields]{Subject: "userapi.query_profile_fields"}
	SetProfileField    = bus.Endpoint[SetProfileFieldRequest, Empty]{Subject: "userapi.set_profile_field"}

	// QueryAccountFlags and SetAccountFlags back the admin suspend and
	// lock endpoints; M_NOT_FOUND for an unknown or deactivated account.
	QueryAccountFlags = bus.Endpoint[QueryAccountFlagsRequest, AccountFlags]{Subject: "userapi.query_account_flags"}
	SetAccountFlags   = bus.Endpoint[SetAccountFlagsRequest, AccountFlags]{Subject: "userapi.set_account_flags"}

	ReportUser = bus.Endpoint[ReportUserRequest, Empty]{Subject: "userapi.report_user"}
)

// Empty is the answer of commands that return nothing.
type Empty struct{}

type CreateOpenIDTokenRequest struct {
	UserID string `json:"user_id"`
}

type CreateOpenIDTokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresInMS int64  `json:"expires_in_ms"`
}

type QueryOpenIDTokenRequest struct {
	AccessToken string `json:"access_token"`
}

// QueryOpenIDTokenResponse has an empty UserID for an unknown or expired token.
type QueryOpenIDTokenResponse struct {
	UserID string `json:"user_id,omitempty"`
}

// ProfileFields maps field names to their JSON values.
type ProfileFields struct {
	Fields map[string]json.RawMessage `json:"fields"`
}

// SetProfileFieldRequest sets Field to Value, or deletes it when Delete
// is set. displayname and avatar_url go through SetProfile instead.
type SetProfileFieldRequest struct {
	UserID string          `json:"user_id"`
	Field  string          `json:"field"`
	Value  json.RawMessage `json:"value,omitempty"`
	Delete bool            `json:"delete,omitempty"`
}

type QueryAccountFlagsRequest struct {
	UserID string `json:"user_id"`
}

// AccountFlags are an account's moderation state.
type AccountFlags struct {
	Admin     bool `json:"admin"`
	Suspended bool `json:"suspended"`
	Locked    bool `json:"locked"`
}

// SetAccountFlagsRequest changes the flags that are not nil.
type SetAccountFlagsRequest struct {
	UserID    string `json:"user_id"`
	Suspended *bool  `json:"suspended,omitempty"`
	Locked    *bool  `json:"locked,omitempty"`
}

// ReportUserRequest reports UserID to the server's moderators. A local
// user that does not exist gives M_NOT_FOUND; remote users are stored
// as reported.
type ReportUserRequest struct {
	Reporter string `json:"reporter"`
	UserID   string `json:"user_id"`
	Reason   string `json:"reason"`
}
