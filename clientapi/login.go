package clientapi

import (
	"strings"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// loginFlows advertises password login and m.login.token, whose tokens a
// logged-in device gets from /login/get_token (get_login_token).
func (c *ClientAPI) loginFlows(*httputil.Request) (any, error) {
	return map[string]any{"flows": []map[string]any{
		{"type": "m.login.password"},
		{"type": "m.login.token", "get_login_token": true},
	}}, nil
}

type loginRequest struct {
	Type       string `json:"type"`
	Identifier struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
	User                     string `json:"user"` // deprecated form
	Password                 string `json:"password"`
	Token                    string `json:"token"` // m.login.token
	DeviceID                 string `json:"device_id"`
	InitialDeviceDisplayName string `json:"initial_device_display_name"`
	RefreshToken             bool   `json:"refresh_token"`
}

type loginResponse struct {
	UserID      string `json:"user_id"`
	AccessToken string `json:"access_token"`
	DeviceID    string `json:"device_id"`
	HomeServer  string `json:"home_server"`
	WellKnown   any    `json:"well_known,omitempty"`
	// Set when the client asked for a refresh token.
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresInMS  int64  `json:"expires_in_ms,omitempty"`
}

func (c *ClientAPI) login(req *httputil.Request) (any, error) {
	var body loginRequest
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if err := checkDeviceFields(body.DeviceID, body.InitialDeviceDisplayName); err != nil {
		return nil, err
	}
	switch body.Type {
	case "m.login.password":
	case "m.login.token":
		return c.loginWithToken(req, &body)
	default:
		return nil, mxerr.New(400, "M_UNKNOWN", "unsupported login type %q", body.Type)
	}
	user := body.User
	if body.Identifier.Type != "" {
		if body.Identifier.Type != "m.id.user" {
			return nil, mxerr.New(400, "M_UNKNOWN", "unsupported identifier type %q", body.Identifier.Type)
		}
		user = body.Identifier.User
	}
	if user == "" {
		return nil, mxerr.MissingParam("identifier.user is required")
	}
	if body.Password == "" {
		return nil, mxerr.MissingParam("password is required")
	}
	resp, err := userapi.Login.Call(req.Context(), c.bus, &userapi.LoginRequest{
		User:               strings.TrimSpace(user),
		Password:           body.Password,
		DeviceID:           body.DeviceID,
		InitialDisplayName: body.InitialDeviceDisplayName,
		RefreshToken:       body.RefreshToken,
	})
	if err != nil {
		return nil, err
	}
	return c.loginResult(resp), nil
}

func (c *ClientAPI) loginResult(resp *userapi.LoginResponse) loginResponse {
	return loginResponse{
		UserID:      resp.UserID,
		AccessToken: resp.AccessToken,
		DeviceID:    resp.DeviceID,
		HomeServer:  c.cfg.ServerName,
		WellKnown:   map[string]any{"m.homeserver": map[string]string{"base_url": c.cfg.BaseURL()}},

		RefreshToken: resp.RefreshToken,
		ExpiresInMS:  resp.ExpiresInMS,
	}
}

func checkDeviceFields(deviceID, displayName string) error {
	if len(deviceID) > 255 {
		return mxerr.InvalidParam("device_id is longer than 255 bytes")
	}
	if len(displayName) > 255 {
		return mxerr.InvalidParam("initial_device_display_name is longer than 255 bytes")
	}
	return nil
}

func (c *ClientAPI) logout(req *httputil.Request) (any, error) {
	_, err := userapi.Logout.Call(req.Context(), c.bus, &userapi.LogoutRequest{UserID: req.Device.UserID, DeviceID: req.Device.DeviceID})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (c *ClientAPI) logoutAll(req *httputil.Request) (any, error) {
	_, err := userapi.Logout.Call(req.Context(), c.bus, &userapi.LogoutRequest{UserID: req.Device.UserID, All: true})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (c *ClientAPI) whoami(req *httputil.Request) (any, error) {
	resp := map[string]any{"user_id": req.Device.UserID, "device_id": req.Device.DeviceID}
	if req.Device.IsGuest {
		resp["is_guest"] = true
	}
	return resp, nil
}
