package tests

import (
	"strings"
	"testing"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

func TestProfileCustomFields(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	base := srv.URL + "/_matrix/client/v3/profile/" + alice.UserID.String()
	tok := alice.AccessToken

	if r := rawRequest(t, "PUT", base+"/m.tz", tok, `{"m.tz":"Europe/Paris"}`); r.status != 200 {
		t.Fatalf("set m.tz: %d %v", r.status, r.body)
	}
	if r := rawRequest(t, "PUT", base+"/gouv.fr.ministry", tok, `{"gouv.fr.ministry":{"name":"Intérieur","level":2}}`); r.status != 200 {
		t.Fatalf("set custom: %d %v", r.status, r.body)
	}
	if r := rawRequest(t, "PUT", base+"/displayname", tok, `{"displayname":"Alice"}`); r.status != 200 {
		t.Fatalf("set displayname: %d %v", r.status, r.body)
	}
	r := rawRequest(t, "GET", base+"/gouv.fr.ministry", bob.AccessToken, "")
	if v, _ := r.body["gouv.fr.ministry"].(map[string]any); r.status != 200 || v["name"] != "Intérieur" {
		t.Fatalf("get custom: %d %v", r.status, r.body)
	}
	r = rawRequest(t, "GET", base, "", "")
	if r.status != 200 || r.body["m.tz"] != "Europe/Paris" || r.body["displayname"] != "Alice" || r.body["gouv.fr.ministry"] == nil {
		t.Fatalf("full profile: %d %v", r.status, r.body)
	}
	// The capability says fields may be changed.
	caps := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/capabilities", tok, "")
	pf, _ := caps.body["capabilities"].(map[string]any)["m.profile_fields"].(map[string]any)
	if pf["enabled"] != true {
		t.Fatalf("m.profile_fields = %v", pf)
	}

	if r := rawRequest(t, "DELETE", base+"/m.tz", tok, ""); r.status != 200 {
		t.Fatalf("delete: %d %v", r.status, r.body)
	}
	if r := rawRequest(t, "GET", base+"/m.tz", "", ""); r.status != 404 || r.body["errcode"] != "M_NOT_FOUND" {
		t.Fatalf("deleted field: %d %v", r.status, r.body)
	}
	if r := rawRequest(t, "DELETE", base+"/displayname", tok, ""); r.status != 200 {
		t.Fatalf("delete displayname: %d %v", r.status, r.body)
	}
	if r := rawRequest(t, "GET", base+"/displayname", "", ""); r.status != 404 {
		t.Fatalf("deleted displayname: %d %v", r.status, r.body)
	}

	big := strings.Repeat("x", 40*1024)
	if r := rawRequest(t, "PUT", base+"/org.example.a", tok, `{"org.example.a":"`+big+`"}`); r.status != 200 {
		t.Fatalf("40 KiB field: %d %v", r.status, r.body)
	}
	cases := []struct {
		name, method, url, token, body, code string
		status                               int
	}{
		{"total over 64 KiB", "PUT", base + "/org.example.b", tok, `{"org.example.b":"` + big + `"}`, "M_PROFILE_TOO_LARGE", 400},
		{"key too long", "PUT", base + "/org.example." + strings.Repeat("k", 300), tok, `{}`, "M_KEY_TOO_LARGE", 400},
		{"not namespaced", "PUT", base + "/foo", tok, `{"foo":1}`, "M_INVALID_PARAM", 400},
		{"missing value", "PUT", base + "/org.example.c", tok, `{"other":1}`, "M_MISSING_PARAM", 400},
		{"not json", "PUT", base + "/org.example.c", tok, `{nope`, "M_NOT_JSON", 400},
		{"m.tz not a string", "PUT", base + "/m.tz", tok, `{"m.tz":3}`, "M_BAD_JSON", 400},
		{"someone else's", "PUT", base + "/org.example.c", bob.AccessToken, `{"org.example.c":1}`, "M_FORBIDDEN", 403},
		{"delete someone else's", "DELETE", base + "/org.example.a", bob.AccessToken, "", "M_FORBIDDEN", 403},
		{"no token", "PUT", base + "/org.example.c", "", `{"org.example.c":1}`, "M_MISSING_TOKEN", 401},
		{"unset", "GET", base + "/org.example.unset", "", "", "M_NOT_FOUND", 404},
		{"unknown user", "GET", srv.URL + "/_matrix/client/v3/profile/@nobody:localhost/m.tz", "", "", "M_NOT_FOUND", 404},
	}
	for _, c := range cases {
		if r := rawRequest(t, c.method, c.url, c.token, c.body); r.status != c.status || r.body["errcode"] != c.code {
			t.Errorf("%s: %d %v", c.name, r.status, r.body)
		}
	}
}
