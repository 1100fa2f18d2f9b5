package tests

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/synapseadmin"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

func TestRegistrationTokens(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) {
		c.Registration.Enabled = true
		c.Registration.RequireToken = true
	})
	base := srv.Client(t)
	adm, err := (&synapseadmin.Client{Client: base}).SharedSecretRegister(context.Background(), testserver.SharedSecret,
		synapseadmin.ReqSharedSecretRegister{Username: "root", Password: "password-root", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	admin := adm.AccessToken
	bob := srv.RegisterUser(t, "bob")
	api := srv.URL + "/_synapse/admin/v1/registration_tokens"
	reg := srv.URL + "/_matrix/client/v3/register"
	validity := srv.URL + "/_matrix/client/v1/register/m.login.registration_token/validity?token="

	if r := rawRequest(t, "POST", api+"/new", bob.AccessToken, `{}`); r.status != 403 || r.body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("non-admin: %+v", r)
	}
	for _, bad := range []string{`{"token":"bad token!"}`, `{"uses_allowed":-1}`, `{"expiry_time":1}`, `{"length":65}`} {
		if r := rawRequest(t, "POST", api+"/new", admin, bad); r.status != 400 || r.body["errcode"] != "M_INVALID_PARAM" {
			t.Fatalf("create %s: %+v", bad, r)
		}
	}
	gen := rawRequest(t, "POST", api+"/new", admin, `{}`)
	if tok, _ := gen.body["token"].(string); gen.status != 200 || len(tok) != 16 || gen.body["uses_allowed"] != nil {
		t.Fatalf("generated token: %+v", gen)
	}
	one := rawRequest(t, "POST", api+"/new", admin, `{"token":"once","uses_allowed":1}`)
	if one.status != 200 || one.body["uses_allowed"] != float64(1) || one.body["pending"] != float64(0) {
		t.Fatalf("create: %+v", one)
	}
	if r := rawRequest(t, "POST", api+"/new", admin, `{"token":"once"}`); r.status != 400 {
		t.Fatalf("duplicate: %+v", r)
	}
	if r := rawRequest(t, "GET", validity+"once", "", ""); r.status != 200 || r.body["valid"] != true {
		t.Fatalf("validity: %+v", r)
	}

	// Registration asks for the token stage; a wrong token is refused.
	session := wantUIA(t, rawRequest(t, "POST", reg, "", `{"username":"carol","password":"pw"}`), "", "m.login.registration_token")
	wantUIA(t, rawRequest(t, "POST", reg, "", `{"username":"carol","password":"pw","auth":{"type":"m.login.registration_token","token":"nope","session":"`+session+`"}}`),
		"M_FORBIDDEN", "m.login.registration_token")
	if r := rawRequest(t, "POST", reg, "", `{"username":"carol","password":"pw","auth":{"type":"m.login.dummy","session":"`+session+`"}}`); r.status != 401 || r.body["errcode"] != "M_UNRECOGNIZED" {
		t.Fatalf("dummy stage when a token is required: %+v", r)
	}
	ok := rawRequest(t, "POST", reg, "", `{"username":"carol","password":"pw","auth":{"type":"m.login.registration_token","token":"once","session":"`+session+`"}}`)
	if ok.status != 200 || ok.body["user_id"] != "@carol:"+srv.Config.ServerName {
		t.Fatalf("register with token: %+v", ok)
	}
	got := rawRequest(t, "GET", api+"/once", admin, "")
	if got.body["completed"] != float64(1) || got.body["pending"] != float64(0) {
		t.Fatalf("token after use: %+v", got)
	}

	// Exhausted.
	if r := rawRequest(t, "GET", validity+"once", "", ""); r.body["valid"] != false {
		t.Fatalf("validity of a used-up token: %+v", r)
	}
	s2 := wantUIA(t, rawRequest(t, "POST", reg, "", `{"username":"dave","password":"pw"}`), "", "m.login.registration_token")
	wantUIA(t, rawRequest(t, "POST", reg, "", `{"username":"dave","password":"pw","auth":{"type":"m.login.registration_token","token":"once","session":"`+s2+`"}}`),
		"M_FORBIDDEN", "m.login.registration_token")

	// Raising the limit makes it valid again; listing filters on validity.
	up := rawRequest(t, "PUT", api+"/once", admin, `{"uses_allowed":2}`)
	if up.status != 200 || up.body["uses_allowed"] != float64(2) {
		t.Fatalf("update: %+v", up)
	}
	if r := rawRequest(t, "PUT", api+"/once", admin, `{"uses_allowed":"x"}`); r.status != 400 {
		t.Fatalf("bad update: %+v", r)
	}
	list := rawRequest(t, "GET", api+"?valid=false", admin, "")
	if toks, _ := list.body["registration_tokens"].([]any); list.status != 200 || len(toks) != 0 {
		t.Fatalf("invalid tokens: %+v", list)
	}
	list = rawRequest(t, "GET", api, admin, "")
	if toks, _ := list.body["registration_tokens"].([]any); len(toks) != 2 {
		t.Fatalf("all tokens: %+v", list)
	}
	cli := srv.Client(t)
	// mautrix walks the flow itself once given the token stage's auth.
	_, _, err = cli.Register(ctxT(t), &mautrix.ReqRegister[any]{Username: "erin", Password: "pw",
		Auth: map[string]any{"type": "m.login.registration_token", "token": "once"}})
	if err != nil {
		t.Fatalf("register erin: %v", err)
	}

	if r := rawRequest(t, "DELETE", api+"/once", admin, ""); r.status != 200 {
		t.Fatalf("delete: %+v", r)
	}
	if r := rawRequest(t, "GET", api+"/once", admin, ""); r.status != 404 || r.body["errcode"] != "M_NOT_FOUND" {
		t.Fatalf("deleted token: %+v", r)
	}
	if r := rawRequest(t, "DELETE", api+"/once", admin, ""); r.status != 404 {
		t.Fatalf("delete twice: %+v", r)
	}
	if r := rawRequest(t, "GET", validity, "", ""); r.status != 400 || r.body["errcode"] != "M_MISSING_PARAM" {
		t.Fatalf("validity without token: %+v", r)
	}
}
