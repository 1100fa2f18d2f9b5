package clientapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

type registerRequest struct {
	Auth                     *uiaAuth `json:"auth"`
	Username                 string   `json:"username"`
	Password                 string   `json:"password"`
	DeviceID                 string   `json:"device_id"`
	InitialDeviceDisplayName string   `json:"initial_device_display_name"`
	InhibitLogin             bool     `json:"inhibit_login"`
	RefreshToken             bool     `json:"refresh_token"`
	Type                     string   `json:"type"` // m.login.application_service
}

// register is open registration through user-interactive auth: the
// m.login.dummy stage, or m.login.registration_token when
// registration.require_token is set. It is off unless
// registration.enabled is set; operators create accounts with the CLI or
// the shared-secret endpoint instead.
func (c *ClientAPI) register(req *httputil.Request) (any, error) {
	switch kind := req.URL.Query().Get("kind"); kind {
	case "", "user":
	case "guest":
		return nil, mxerr.New(http.StatusForbidden, "M_GUEST_ACCESS_FORBIDDEN", "guest access is disabled")
	default:
		return nil, mxerr.InvalidParam("unknown kind %q", kind)
	}
	var body registerRequest
	decodeErr := httputil.DecodeJSON(req.Request, &body)
	if decodeErr == nil && body.Type == userapi.LoginTypeAppService {
		return c.registerAppService(req, &body)
	}
	if !c.cfg.Registration.Enabled {
		return nil, mxerr.Forbidden("registration is disabled on this server")
	}
	if decodeErr != nil {
		return nil, decodeErr
	}
	if err := checkDeviceFields(body.DeviceID, body.InitialDeviceDisplayName); err != nil {
		return nil, err
	}
	if len(body.Password) > userapi.MaxPasswordBytes {
		return nil, mxerr.InvalidParam("password is longer than %d bytes", userapi.MaxPasswordBytes)
	}
	if body.Username != "" {
		// Name problems are reported before the auth stages, so a client
		// does not walk the user through auth to fail afterwards.
		avail, err := userapi.QueryAvailable.Call(req.Context(), c.bus, &userapi.QueryAvailableRequest{Localpart: body.Username})
		if err != nil {
			return nil, err
		}
		if !avail.Available {
			return nil, mxerr.UserInUse("user ID already taken")
		}
		if _, err := userapi.CheckUserNamespace.Call(req.Context(), c.bus, &userapi.CheckUserNamespaceRequest{Localpart: body.Username}); err != nil {
			return nil, err
		}
	}
	session, err := c.authenticate(req, body.Auth, c.registerUIA())
	if err != nil {
		return nil, err
	}
	localpart := body.Username
	if localpart == "" {
		localpart = randomLocalpart()
	}
	resp, err := userapi.Register.Call(req.Context(), c.bus, &userapi.RegisterRequest{
		Localpart:          localpart,
		Password:           body.Password,
		DeviceID:           body.DeviceID,
		InitialDisplayName: body.InitialDeviceDisplayName,
		InhibitLogin:       body.InhibitLogin,
		RefreshToken:       body.RefreshToken,
	})
	if session.RegToken != "" {
		c.releaseRegToken(req, session.RegToken, err == nil)
	}
	if err != nil {
		return nil, err
	}
	if body.InhibitLogin {
		return map[string]string{"user_id": resp.UserID, "home_server": c.cfg.ServerName}, nil
	}
	return c.loginResult(resp), nil
}

// registerUIA is the registration flow the configuration asks for.
func (c *ClientAPI) registerUIA() uiaSpec {
	flows := [][]string{{stageDummy}}
	if c.cfg.Registration.RequireToken {
		flows = [][]string{{stageRegToken}}
	}
	return uiaSpec{route: "POST /register", flows: flows}
}

// releaseRegToken ends the token reservation the session made: one use
// counted if the account was created, given back otherwise. A failure only
// skews the token's counters, so it is logged, not returned.
func (c *ClientAPI) releaseRegToken(req *httputil.Request, token string, used bool) {
	ctx := context.WithoutCancel(req.Context())
	if _, err := userapi.ReleaseRegistrationToken.Call(ctx, c.bus, &userapi.ReleaseRegistrationTokenRequest{Token: token, Used: used}); err != nil {
		req.Log.Warn("release registration token", "err", err, "used", used)
	}
}

func (c *ClientAPI) registerAvailable(req *httputil.Request) (any, error) {
	name := req.URL.Query().Get("username")
	if name == "" {
		return nil, mxerr.MissingParam("username is required")
	}
	avail, err := userapi.QueryAvailable.Call(req.Context(), c.bus, &userapi.QueryAvailableRequest{Localpart: name})
	if err != nil {
		return nil, err
	}
	if !avail.Available {
		return nil, mxerr.UserInUse("user ID already taken")
	}
	if _, err := userapi.CheckUserNamespace.Call(req.Context(), c.bus, &userapi.CheckUserNamespaceRequest{Localpart: name}); err != nil {
		return nil, err
	}
	return map[string]bool{"available": true}, nil
}

// registerAppService is registration by an application service (its
// as_token in the Authorization header): no user-interactive auth, no
// password, a user in its namespaces (M_EXCLUSIVE otherwise).
func (c *ClientAPI) registerAppService(req *httputil.Request, body *registerRequest) (any, error) {
	token, _ := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if token == "" {
		token = req.URL.Query().Get("access_token")
	}
	if err := checkDeviceFields(body.DeviceID, body.InitialDeviceDisplayName); err != nil {
		return nil, err
	}
	resp, err := userapi.RegisterAppServiceUser.Call(req.Context(), c.bus, &userapi.RegisterAppServiceUserRequest{
		ASToken:            strings.TrimSpace(token),
		Localpart:          body.Username,
		DeviceID:           body.DeviceID,
		InitialDisplayName: body.InitialDeviceDisplayName,
		InhibitLogin:       body.InhibitLogin,
		RefreshToken:       body.RefreshToken,
	})
	if err != nil {
		return nil, err
	}
	if body.InhibitLogin {
		return map[string]string{"user_id": resp.UserID, "home_server": c.cfg.ServerName}, nil
	}
	return c.loginResult(resp), nil
}

func randomLocalpart() string { return "u" + randomHex(8) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
