package clientapi

import (
	"encoding/json"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// Synapse's registration-token admin API, so that operators' tools work
// unchanged: /_synapse/admin/v1/registration_tokens.

func requireAdmin(req *httputil.Request) error {
	if !req.Device.IsAdmin {
		return mxerr.Forbidden("you are not a server admin")
	}
	return nil
}

func (c *ClientAPI) listRegTokens(req *httputil.Request) (any, error) {
	if err := requireAdmin(req); err != nil {
		return nil, err
	}
	list := &userapi.ListRegistrationTokensRequest{}
	switch v := req.URL.Query().Get("valid"); v {
	case "":
	case "true", "false":
		valid := v == "true"
		list.Valid = &valid
	default:
		return nil, mxerr.InvalidParam("valid must be true or false")
	}
	return userapi.ListRegistrationTokens.Call(req.Context(), c.bus, list)
}

func (c *ClientAPI) getRegToken(req *httputil.Request) (any, error) {
	if err := requireAdmin(req); err != nil {
		return nil, err
	}
	return userapi.QueryRegistrationToken.Call(req.Context(), c.bus, &userapi.QueryRegistrationTokenRequest{Token: req.PathValue("token")})
}

func (c *ClientAPI) newRegToken(req *httputil.Request) (any, error) {
	if err := requireAdmin(req); err != nil {
		return nil, err
	}
	var body userapi.CreateRegistrationTokenRequest
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	return userapi.CreateRegistrationToken.Call(req.Context(), c.bus, &body)
}

// updateRegToken changes uses_allowed and expiry_time; a key absent from
// the body is left alone, a null clears the limit.
func (c *ClientAPI) updateRegToken(req *httputil.Request) (any, error) {
	if err := requireAdmin(req); err != nil {
		return nil, err
	}
	var body map[string]json.RawMessage
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	up := &userapi.UpdateRegistrationTokenRequest{Token: req.PathValue("token")}
	var err error
	if raw, ok := body["uses_allowed"]; ok {
		up.SetUsesAllowed = true
		if up.UsesAllowed, err = nullableInt(raw, "uses_allowed"); err != nil {
			return nil, err
		}
	}
	if raw, ok := body["expiry_time"]; ok {
		up.SetExpiryTime = true
		if up.ExpiryTime, err = nullableInt(raw, "expiry_time"); err != nil {
			return nil, err
		}
	}
	return userapi.UpdateRegistrationToken.Call(req.Context(), c.bus, up)
}

func nullableInt(raw json.RawMessage, name string) (*int64, error) {
	var v *int64
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, mxerr.InvalidParam("%s must be an integer or null", name)
	}
	return v, nil
}

func (c *ClientAPI) deleteRegToken(req *httputil.Request) (any, error) {
	if err := requireAdmin(req); err != nil {
		return nil, err
	}
	if _, err := userapi.DeleteRegistrationToken.Call(req.Context(), c.bus, &userapi.QueryRegistrationTokenRequest{Token: req.PathValue("token")}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// regTokenValidity lets a client check a token before asking for the rest
// of the registration form. It does not reserve the token.
func (c *ClientAPI) regTokenValidity(req *httputil.Request) (any, error) {
	if !c.cfg.Registration.Enabled {
		return nil, mxerr.Forbidden("registration is disabled on this server")
	}
	token := req.URL.Query().Get("token")
	if token == "" {
		return nil, mxerr.MissingParam("token is required")
	}
	resp, err := userapi.CheckRegistrationToken.Call(req.Context(), c.bus, &userapi.QueryRegistrationTokenRequest{Token: token})
	if err != nil {
		return nil, err
	}
	return map[string]bool{"valid": resp.Valid}, nil
}
