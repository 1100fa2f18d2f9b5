package userapi

// Payloads of the account endpoints declared in api.go.

// CheckPasswordRequest checks a user's password (user-interactive auth).
type CheckPasswordRequest struct {
	UserID   string `json:"user_id"`
	Password string `json:"password"`
}

// CheckPasswordResponse is false for a wrong password, an unknown or
// deactivated account and an account without a password alike.
type CheckPasswordResponse struct {
	Valid bool `json:"valid"`
}

// SetPasswordRequest changes a password. With LogoutDevices every device
// but KeepDeviceID is deleted, with its tokens.
type SetPasswordRequest struct {
	UserID        string `json:"user_id"`
	Password      string `json:"password"`
	LogoutDevices bool   `json:"logout_devices,omitempty"`
	KeepDeviceID  string `json:"keep_device_id,omitempty"`
}

type SetPasswordResponse struct{}

// SetProfileRequest changes the fields that are not nil.
type SetProfileRequest struct {
	UserID      string  `json:"user_id"`
	DisplayName *string `json:"displayname,omitempty"`
	AvatarURL   *string `json:"avatar_url,omitempty"`
}

// SetProfileResponse is the profile after the change; Changed is false
// when the request set the values already stored.
type SetProfileResponse struct {
	Profile Profile `json:"profile"`
	Changed bool    `json:"changed"`
}

type SearchUsersRequest struct {
	SearchTerm string `json:"search_term"`
	Limit      int    `json:"limit"`
}

type SearchUsersResponse struct {
	Results []UserSearchResult `json:"results"`
	Limited bool               `json:"limited"`
}

type UserSearchResult struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"display_name,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// QueryDevicesRequest lists a user's devices, or only DeviceID when set.
type QueryDevicesRequest struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id,omitempty"`
}

type QueryDevicesResponse struct {
	Devices []DeviceInfo `json:"devices"`
}

// DeviceInfo is a device as GET /devices shows it.
type DeviceInfo struct {
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name,omitempty"`
	LastSeenTS  int64  `json:"last_seen_ts,omitempty"`
}

// UpdateDeviceRequest renames a device; M_NOT_FOUND if the user has no
// such device.
type UpdateDeviceRequest struct {
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name"`
}

type UpdateDeviceResponse struct{}

// DeleteDevicesRequest deletes devices with their tokens; unknown ones are
// skipped.
type DeleteDevicesRequest struct {
	UserID    string   `json:"user_id"`
	DeviceIDs []string `json:"device_ids"`
}

type DeleteDevicesResponse struct{}

// RefreshRequest exchanges a refresh token for a new access token and a
// new refresh token; the old ones stop working.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

type CreateLoginTokenRequest struct {
	UserID string `json:"user_id"`
}

type CreateLoginTokenResponse struct {
	LoginToken  string `json:"login_token"`
	ExpiresInMS int64  `json:"expires_in_ms"`
}

// CreateUIASessionRequest starts a session for one operation (Route) of
// one user ("" while registering).
type CreateUIASessionRequest struct {
	UserID string `json:"user_id"`
	Route  string `json:"route"`
}

type CreateUIASessionResponse struct {
	Session string `json:"session"`
}

type QueryUIASessionRequest struct {
	Session string `json:"session"`
}

// UIASession is a session's state; Found is false for an unknown or
// expired session.
type UIASession struct {
	Found     bool     `json:"found"`
	Session   string   `json:"session,omitempty"`
	UserID    string   `json:"user_id,omitempty"`
	Route     string   `json:"route,omitempty"`
	Completed []string `json:"completed,omitempty"`
	// RegToken is the registration token the session reserved.
	RegToken string `json:"reg_token,omitempty"`
	// Refused is set by CompleteUIAStage when RegToken could not be
	// reserved (unknown, expired or used up); the stage is not completed.
	Refused bool `json:"refused,omitempty"`
}

// CompleteUIAStageRequest records a stage the client passed. With
// RegToken, the token is reserved in the same transaction.
type CompleteUIAStageRequest struct {
	Session  string `json:"session"`
	Stage    string `json:"stage"`
	RegToken string `json:"reg_token,omitempty"`
}

// EndUIASessionRequest deletes a session and returns what it held, so
// that it cannot authorise a second operation.
type EndUIASessionRequest struct {
	Session string `json:"session"`
}

// RegistrationToken is Synapse's admin API object. Nil pointers are null.
type RegistrationToken struct {
	Token       string `json:"token"`
	UsesAllowed *int64 `json:"uses_allowed"`
	Pending     int64  `json:"pending"`
	Completed   int64  `json:"completed"`
	ExpiryTime  *int64 `json:"expiry_time"`
}

// ListRegistrationTokensRequest filters on validity when Valid is set.
type ListRegistrationTokensRequest struct {
	Valid *bool `json:"valid,omitempty"`
}

type ListRegistrationTokensResponse struct {
	Tokens []RegistrationToken `json:"registration_tokens"`
}

type QueryRegistrationTokenRequest struct {
	Token string `json:"token"`
}

// CreateRegistrationTokenRequest: an empty Token is generated with Length
// characters.
type CreateRegistrationTokenRequest struct {
	Token       string `json:"token,omitempty"`
	Length      int    `json:"length,omitempty"`
	UsesAllowed *int64 `json:"uses_allowed,omitempty"`
	ExpiryTime  *int64 `json:"expiry_time,omitempty"`
}

// UpdateRegistrationTokenRequest changes the fields whose Set* is true
// (to null when the value is nil).
type UpdateRegistrationTokenRequest struct {
	Token          string `json:"token"`
	SetUsesAllowed bool   `json:"set_uses_allowed,omitempty"`
	UsesAllowed    *int64 `json:"uses_allowed,omitempty"`
	SetExpiryTime  bool   `json:"set_expiry_time,omitempty"`
	ExpiryTime     *int64 `json:"expiry_time,omitempty"`
}

type DeleteRegistrationTokenResponse struct{}

type CheckRegistrationTokenResponse struct {
	Valid bool `json:"valid"`
}

// ReleaseRegistrationTokenRequest ends a reservation made by a UIA stage:
// Used counts a registration, otherwise the use is given back.
type ReleaseRegistrationTokenRequest struct {
	Token string `json:"token"`
	Used  bool   `json:"used"`
}

type ReleaseRegistrationTokenResponse struct{}
