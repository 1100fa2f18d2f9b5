package clientapi

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

type registerRequest struct {
	Auth *struct {
		Type    string `json:"type"`
		Session string `json:"session"`
	} `json:"auth"`
	Username                 string `json:"username"`
	Password                 string `json:"password"`
	DeviceID                 string `json:"device_id"`
	InitialDeviceDisplayName string `json:"initial_device_display_name"`
	InhibitLogin             bool   `json:"inhibit_login"`
}

// register is open registration with the m.login.dummy stage. It is off
// unless registration.enabled is set; operators create accounts with the
// CLI or the shared-secret endpoint instead.
func (c *ClientAPI) register(req *httputil.Request) (any, error) {
	switch kind := req.URL.Query().Get("kind"); kind {
	case "", "user":
	case "guest":
		return nil, mxerr.New(http.StatusForbidden, "M_GUEST_ACCESS_FORBIDDEN", "guest access is disabled")
	default:
		return nil, mxerr.InvalidParam("unknown kind %q", kind)
	}
	if !c.cfg.Registration.Enabled {
		return nil, mxerr.Forbidden("registration is disabled on this server")
	}
	var body registerRequest
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if err := checkDeviceFields(body.DeviceID, body.InitialDeviceDisplayName); err != nil {
		return nil, err
	}
	if len(body.Password) > 512 {
		return nil, mxerr.InvalidParam("password is longer than 512 bytes")
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
	}
	if body.Auth == nil || body.Auth.Type != "m.login.dummy" {
		return nil, uiaChallenge(body.Auth != nil)
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
	})
	if err != nil {
		return nil, err
	}
	if body.InhibitLogin {
		return map[string]string{"user_id": resp.UserID, "home_server": c.cfg.ServerName}, nil
	}
	return c.loginResult(resp), nil
}

// uiaChallenge is the 401 that lists the stages a client must complete.
func uiaChallenge(failedStage bool) *mxerr.Error {
	e := mxerr.New(http.StatusUnauthorized, "M_FORBIDDEN", "authentication required")
	if !failedStage {
		e.Code, e.Message = "", ""
	}
	e.Extra = map[string]any{
		"flows":   []map[string]any{{"stages": []string{"m.login.dummy"}}},
		"params":  map[string]any{},
		"session": randomHex(12),
	}
	return e
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
	return map[string]bool{"available": true}, nil
}

func randomLocalpart() string { return "u" + randomHex(8) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
