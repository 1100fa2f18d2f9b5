package clientapi

import (
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// loginWithToken is the m.login.token login: a single-use token that a
// logged-in device got from /login/get_token (e.g. to sign in a new device
// by QR code).
func (c *ClientAPI) loginWithToken(req *httputil.Request, body *loginRequest) (any, error) {
	if body.Token == "" {
		return nil, mxerr.MissingParam("token is required")
	}
	resp, err := userapi.Login.Call(req.Context(), c.bus, &userapi.LoginRequest{
		LoginToken:         body.Token,
		DeviceID:           body.DeviceID,
		InitialDisplayName: body.InitialDeviceDisplayName,
		RefreshToken:       body.RefreshToken,
	})
	if err != nil {
		return nil, err
	}
	return c.loginResult(resp), nil
}

// getLoginToken issues an m.login.token token, after the user proves it is
// them (user-interactive auth): the token opens a new session.
func (c *ClientAPI) getLoginToken(req *httputil.Request) (any, error) {
	var body struct {
		Auth *uiaAuth `json:"auth"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if _, err := c.authenticate(req, body.Auth, uiaSpec{route: "POST /login/get_token", userID: req.Device.UserID, flows: passwordFlows}); err != nil {
		return nil, err
	}
	resp, err := userapi.CreateLoginToken.Call(req.Context(), c.bus, &userapi.CreateLoginTokenRequest{UserID: req.Device.UserID})
	if err != nil {
		return nil, err
	}
	return map[string]any{"login_token": resp.LoginToken, "expires_in_ms": resp.ExpiresInMS}, nil
}

// refresh exchanges a refresh token for new tokens.
func (c *ClientAPI) refresh(req *httputil.Request) (any, error) {
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if body.RefreshToken == "" {
		return nil, mxerr.MissingParam("refresh_token is required")
	}
	resp, err := userapi.Refresh.Call(req.Context(), c.bus, &userapi.RefreshRequest{RefreshToken: body.RefreshToken})
	if err != nil {
		return nil, err
	}
	return map[string]any{"access_token": resp.AccessToken, "refresh_token": resp.RefreshToken, "expires_in_ms": resp.ExpiresInMS}, nil
}
