package tests

import (
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

func TestRefreshTokens(t *testing.T) {
	const lifetime = 1500 * time.Millisecond
	srv := testserver.New(t, func(c *config.Config) { c.Registration.RefreshableAccessTokenLifetime = lifetime })
	srv.RegisterUser(t, "alice")
	v3 := srv.URL + "/_matrix/client/v3"

	login := rawRequest(t, "POST", v3+"/login", "",
		`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"password-alice","refresh_token":true}`)
	access, _ := login.body["access_token"].(string)
	refresh, _ := login.body["refresh_token"].(string)
	if login.status != 200 || access == "" || refresh == "" || login.body["expires_in_ms"] != float64(lifetime.Milliseconds()) {
		t.Fatalf("login = %+v", login)
	}
	if r := rawRequest(t, "GET", v3+"/account/whoami", access, ""); r.status != 200 {
		t.Fatalf("whoami = %+v", r)
	}

	// Rotation: new tokens; the old refresh and access tokens stop working.
	rot := rawRequest(t, "POST", v3+"/refresh", "", `{"refresh_token":"`+refresh+`"}`)
	access2, _ := rot.body["access_token"].(string)
	refresh2, _ := rot.body["refresh_token"].(string)
	if rot.status != 200 || access2 == "" || refresh2 == "" || refresh2 == refresh || rot.body["expires_in_ms"] == nil {
		t.Fatalf("refresh = %+v", rot)
	}
	reused := rawRequest(t, "POST", v3+"/refresh", "", `{"refresh_token":"`+refresh+`"}`)
	if reused.status != 401 || reused.body["errcode"] != "M_UNKNOWN_TOKEN" {
		t.Fatalf("reused refresh token = %+v", reused)
	}
	if r := rawRequest(t, "GET", v3+"/account/whoami", access, ""); r.status != 401 {
		t.Fatalf("old access token = %+v", r)
	}
	who := rawRequest(t, "GET", v3+"/account/whoami", access2, "")
	if who.status != 200 || who.body["device_id"] != login.body["device_id"] {
		t.Fatalf("whoami after refresh = %+v", who)
	}
	if r := rawRequest(t, "POST", v3+"/refresh", "", `{}`); r.status != 400 || r.body["errcode"] != "M_MISSING_PARAM" {
		t.Fatalf("refresh without token = %+v", r)
	}

	// Expiry: a soft logout, after which the refresh token still works.
	time.Sleep(lifetime + 200*time.Millisecond)
	expired := rawRequest(t, "GET", v3+"/account/whoami", access2, "")
	if expired.status != 401 || expired.body["errcode"] != "M_UNKNOWN_TOKEN" || expired.body["soft_logout"] != true {
		t.Fatalf("expired token = %+v", expired)
	}
	rot = rawRequest(t, "POST", v3+"/refresh", "", `{"refresh_token":"`+refresh2+`"}`)
	access3, _ := rot.body["access_token"].(string)
	if r := rawRequest(t, "GET", v3+"/account/whoami", access3, ""); r.status != 200 {
		t.Fatalf("whoami after second refresh = %+v (refresh %+v)", r, rot)
	}

	// Without refresh_token the access token does not expire.
	plain := rawRequest(t, "POST", v3+"/login", "",
		`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"password-alice"}`)
	if _, ok := plain.body["refresh_token"]; ok || plain.body["expires_in_ms"] != nil {
		t.Fatalf("plain login = %+v", plain)
	}
}

func TestLoginToken(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	url := srv.URL + "/_matrix/client/v1/login/get_token"

	flows := must[*mautrix.RespLoginFlows](t)(srv.Client(t).GetLoginFlows(ctx))
	if !flows.HasFlow(mautrix.AuthTypeToken) || !flows.HasFlow(mautrix.AuthTypePassword) {
		t.Fatalf("flows = %+v", flows)
	}
	raw := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/login", "", "")
	tokenFlow := raw.body["flows"].([]any)[1].(map[string]any)
	if tokenFlow["type"] != "m.login.token" || tokenFlow["get_login_token"] != true {
		t.Fatalf("token flow = %+v", tokenFlow)
	}

	session := wantUIA(t, rawRequest(t, "POST", url, alice.AccessToken, `{}`), "", "m.login.password")
	got := rawRequest(t, "POST", url, alice.AccessToken, `{"auth":`+passwordAuth(session, "alice", "password-alice")+`}`)
	token, _ := got.body["login_token"].(string)
	if got.status != 200 || token == "" || got.body["expires_in_ms"] == nil {
		t.Fatalf("get_token = %+v", got)
	}
	cli := srv.Client(t)
	resp := must[*mautrix.RespLogin](t)(cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypeToken, Token: token}))
	if resp.UserID != alice.UserID || resp.DeviceID == alice.DeviceID {
		t.Fatalf("token login = %+v", resp)
	}
	// Single use.
	_, err := srv.Client(t).Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypeToken, Token: token})
	wantErr(t, err, "M_FORBIDDEN", 403)
	_, err = srv.Client(t).Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypeToken})
	wantErr(t, err, "M_MISSING_PARAM", 400)

	caps := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/capabilities", alice.AccessToken, "")
	c := caps.body["capabilities"].(map[string]any)
	for _, k := range []string{"m.change_password", "m.set_displayname", "m.set_avatar_url", "m.get_login_token"} {
		if c[k].(map[string]any)["enabled"] != true {
			t.Errorf("capability %s not enabled: %v", k, c[k])
		}
	}
	_ = id.UserID("")
}
