package clientapi

import (
	"strings"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

func (c *ClientAPI) loginFlows(*httputil.Request) (any, error) {
	return map[string]any{"flows": []map[string]string{{"type": "m.login.password"}}}, nil
}

type loginRequest struct {
	Type       string `json:"type"`
	Identifier struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
	User                     string `json:"user"` // deprecated form
	Password                 string `json:"password"`
	DeviceID                 string `json:"device_id"`
	InitialDeviceDisplayName string `json:"initial_device_display_name"`
}

type loginResponse struct {
	UserID      string `json:"user_id"`
	AccessToken string `json:"access_token"`
	DeviceID    string `json:"device_id"`
	HomeServer  string `json:"home_server"`
	WellKnown   any    `json:"well_known,omitempty"`
}

func (c *ClientAPI) login(req *httputil.Request) (any, error) {
	var body loginRequest
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if body.Type != "m.login.password" {
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
	if err := checkDeviceFields(body.DeviceID, body.InitialDeviceDisplayName); err != nil {
		return nil, err
	}
	resp, err := userapi.Login.Call(req.Context(), c.bus, &userapi.LoginRequest{
		User:               strings.TrimSpace(user),
		Password:           body.Password,
		DeviceID:           body.DeviceID,
		InitialDisplayName: body.InitialDeviceDisplayName,
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
