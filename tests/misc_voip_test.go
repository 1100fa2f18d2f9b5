package tests

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

func TestTurnServerUnconfigured(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	url := srv.URL + "/_matrix/client/v3/voip/turnServer"
	// Synapse's answer without TURN: an empty object.
	if r := rawRequest(t, "GET", url, alice.AccessToken, ""); r.status != 200 || len(r.body) != 0 {
		t.Fatalf("no TURN: %d %v", r.status, r.body)
	}
	if r := rawRequest(t, "GET", url, "", ""); r.status != 401 || r.body["errcode"] != "M_MISSING_TOKEN" {
		t.Fatalf("no token: %d %v", r.status, r.body)
	}
}

func TestTurnServerSharedSecret(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) {
		c.TURN = config.TURN{URIs: []string{"turn:turn.example:3478?transport=udp"}, SharedSecret: "s3cret", UserLifetime: 2 * time.Hour}
	})
	alice := srv.RegisterUser(t, "alice")
	resp := must[*mautrix.RespTurnServer](t)(alice.TurnServer(ctxT(t)))
	user, _, ok := strings.Cut(resp.Username, ":")
	expiry, err := strconv.ParseInt(user, 10, 64)
	if !ok || err != nil || !strings.HasSuffix(resp.Username, ":"+alice.UserID.String()) {
		t.Fatalf("username = %q", resp.Username)
	}
	if d := time.Until(time.Unix(expiry, 0)); d < 119*time.Minute || d > 121*time.Minute {
		t.Fatalf("expiry in %s, want 2h", d)
	}
	mac := hmac.New(sha1.New, []byte("s3cret"))
	mac.Write([]byte(resp.Username))
	if resp.Password != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Fatalf("password %q is not the HMAC of the username", resp.Password)
	}
	if resp.TTL != 7200 || len(resp.URIs) != 1 {
		t.Fatalf("response = %+v", resp)
	}
}

func TestTurnServerStatic(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) {
		c.TURN = config.TURN{URIs: []string{"turns:turn.example"}, Username: "u", Password: "p", UserLifetime: time.Hour}
	})
	alice := srv.RegisterUser(t, "alice")
	resp := must[*mautrix.RespTurnServer](t)(alice.TurnServer(ctxT(t)))
	if resp.Username != "u" || resp.Password != "p" || resp.TTL != 3600 {
		t.Fatalf("response = %+v", resp)
	}
}

func TestWellKnownSupport(t *testing.T) {
	srv := testserver.New(t)
	if r := rawRequest(t, "GET", srv.URL+"/.well-known/matrix/support", "", ""); r.status != 404 || r.body["errcode"] != "M_NOT_FOUND" {
		t.Fatalf("unconfigured: %d %v", r.status, r.body)
	}
	srv = testserver.New(t, func(c *config.Config) {
		c.Support = config.Support{
			Contacts:    []config.SupportContact{{MatrixID: "@admin:localhost", Role: "m.role.admin"}},
			SupportPage: "https://support.example",
		}
	})
	r := rawRequest(t, "GET", srv.URL+"/.well-known/matrix/support", "", "")
	contacts, _ := r.body["contacts"].([]any)
	if r.status != 200 || r.body["support_page"] != "https://support.example" || len(contacts) != 1 {
		t.Fatalf("configured: %d %v", r.status, r.body)
	}
	if c := contacts[0].(map[string]any); c["matrix_id"] != "@admin:localhost" || c["role"] != "m.role.admin" || c["email_address"] != nil {
		t.Fatalf("contact = %v", c)
	}
}

func TestThirdPartyWithoutBridges(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	v3 := srv.URL + "/_matrix/client/v3/thirdparty"
	if r := rawRequest(t, "GET", v3+"/protocols", alice.AccessToken, ""); r.status != 200 || len(r.body) != 0 {
		t.Fatalf("protocols: %d %v", r.status, r.body)
	}
	cases := []struct {
		url, code string
		status    int
	}{
		{v3 + "/protocol/irc", "M_NOT_FOUND", 404},
		{v3 + "/location/irc?channel=%23a", "M_NOT_FOUND", 404},
		{v3 + "/user/irc?nick=bob", "M_NOT_FOUND", 404},
		{v3 + "/location?alias=%23a:localhost", "M_NOT_FOUND", 404},
		{v3 + "/user?userid=@bob:localhost", "M_NOT_FOUND", 404},
		{v3 + "/location", "M_MISSING_PARAM", 400},
		{v3 + "/user", "M_MISSING_PARAM", 400},
	}
	for _, c := range cases {
		if r := rawRequest(t, "GET", c.url, alice.AccessToken, ""); r.status != c.status || r.body["errcode"] != c.code {
			t.Errorf("%s: %d %v", c.url, r.status, r.body)
		}
	}
	if r := rawRequest(t, "GET", v3+"/protocols", "", ""); r.status != 401 {
		t.Errorf("no token: %d", r.status)
	}
}
