package clientapi

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"net/http"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// The shared-secret registration endpoint is Synapse's: operators' tools
// (register_new_matrix_user, Ansible roles, test harnesses) use it to create
// accounts. The MAC is HMAC-SHA1 over nonce, username, password and
// "admin"/"notadmin", NUL-separated, keyed with registration.shared_secret.

func (c *ClientAPI) sharedSecretEnabled() error {
	if c.cfg.Registration.SharedSecret == "" {
		return mxerr.New(http.StatusBadRequest, "M_UNKNOWN", "shared secret registration is not enabled")
	}
	return nil
}

func (c *ClientAPI) sharedSecretNonce(req *httputil.Request) (any, error) {
	if err := c.sharedSecretEnabled(); err != nil {
		return nil, err
	}
	resp, err := userapi.CreateNonce.Call(req.Context(), c.bus, &userapi.CreateNonceRequest{})
	if err != nil {
		return nil, err
	}
	return map[string]string{"nonce": resp.Nonce}, nil
}

type sharedSecretRequest struct {
	Nonce       string `json:"nonce"`
	Username    string `json:"username"`
	DisplayName string `json:"displayname"`
	Password    string `json:"password"`
	Admin       bool   `json:"admin"`
	UserType    string `json:"user_type"`
	// InhibitLogin creates the account without a device or token.
	InhibitLogin bool   `json:"inhibit_login"`
	MAC          string `json:"mac"`
}

func (c *ClientAPI) sharedSecretRegister(req *httputil.Request) (any, error) {
	if err := c.sharedSecretEnabled(); err != nil {
		return nil, err
	}
	var body sharedSecretRequest
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	switch {
	case body.Nonce == "":
		return nil, mxerr.MissingParam("nonce is required")
	case body.Username == "":
		return nil, mxerr.MissingParam("username is required")
	case body.Password == "":
		return nil, mxerr.MissingParam("password is required")
	case body.MAC == "":
		return nil, mxerr.MissingParam("mac is required")
	case len(body.Password) > 512:
		return nil, mxerr.InvalidParam("password is longer than 512 bytes")
	}
	nonce, err := userapi.ConsumeNonce.Call(req.Context(), c.bus, &userapi.ConsumeNonceRequest{Nonce: body.Nonce})
	if err != nil {
		return nil, err
	}
	if !nonce.Valid {
		return nil, mxerr.New(http.StatusBadRequest, "M_UNKNOWN", "unrecognised nonce")
	}
	if !hmac.Equal([]byte(body.MAC), []byte(c.sharedSecretMAC(body))) {
		return nil, mxerr.Forbidden("HMAC incorrect")
	}
	resp, err := userapi.Register.Call(req.Context(), c.bus, &userapi.RegisterRequest{
		Localpart:    body.Username,
		Password:     body.Password,
		Admin:        body.Admin,
		DisplayName:  body.DisplayName,
		InhibitLogin: body.InhibitLogin,
	})
	if err != nil {
		return nil, err
	}
	if body.InhibitLogin {
		return map[string]string{"user_id": resp.UserID, "home_server": c.cfg.ServerName}, nil
	}
	return c.loginResult(resp), nil
}

func (c *ClientAPI) sharedSecretMAC(body sharedSecretRequest) string {
	mac := hmac.New(sha1.New, []byte(c.cfg.Registration.SharedSecret))
	admin := "notadmin"
	if body.Admin {
		admin = "admin"
	}
	mac.Write([]byte(body.Nonce + "\x00" + body.Username + "\x00" + body.Password + "\x00" + admin))
	if body.UserType != "" {
		mac.Write([]byte("\x00" + body.UserType))
	}
	return hex.EncodeToString(mac.Sum(nil))
}
