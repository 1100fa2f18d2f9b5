package clientapi

import (
	"time"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// requestOpenIDToken issues a token a third party exchanges, through
// federation's openid/userinfo (userapi.QueryOpenIDToken), for the user's
// ID. Only for oneself.
func (c *ClientAPI) requestOpenIDToken(req *httputil.Request) (any, error) {
	userID, err := profileUserParam(req)
	if err != nil {
		return nil, err
	}
	if userID != req.Device.UserID {
		return nil, mxerr.Forbidden("you may only request OpenID tokens for yourself")
	}
	var body struct{}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	resp, err := userapi.CreateOpenIDToken.Call(req.Context(), c.bus, &userapi.CreateOpenIDTokenRequest{UserID: userID})
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"access_token":       resp.AccessToken,
		"token_type":         "Bearer",
		"matrix_server_name": c.cfg.ServerName,
		"expires_in":         resp.ExpiresInMS / int64(time.Second/time.Millisecond),
	}, nil
}
