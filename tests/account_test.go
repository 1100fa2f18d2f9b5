package tests

import (
	"testing"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

func TestLoginWhoamiLogout(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	srv.RegisterUser(t, "alice")

	flows := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/login", "", "")
	if flows.status != 200 {
		t.Fatalf("login flows: %d", flows.status)
	}

	login := func() *mautrix.Client {
		cli := srv.Client(t)
		must[*mautrix.RespLogin](t)(cli.Login(ctx, &mautrix.ReqLogin{
			Type:             mautrix.AuthTypePassword,
			Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
			Password:         "password-alice",
			StoreCredentials: true,
		}))
		return cli
	}
	phone, laptop := login(), login()
	if phone.DeviceID == laptop.DeviceID {
		t.Fatal("two logins share a device")
	}
	who := must[*mautrix.RespWhoami](t)(phone.Whoami(ctx))
	if who.UserID != phone.UserID || who.DeviceID != phone.DeviceID {
		t.Fatalf("whoami = %+v", who)
	}

	// Logging the phone out leaves the laptop logged in.
	must[*mautrix.RespLogout](t)(phone.Logout(ctx))
	_, err := phone.Whoami(ctx)
	wantErr(t, err, "M_UNKNOWN_TOKEN", 401)
	must[*mautrix.RespWhoami](t)(laptop.Whoami(ctx))

	// logout/all ends every session.
	tablet := login()
	must[*mautrix.RespLogout](t)(tablet.LogoutAll(ctx))
	_, err = laptop.Whoami(ctx)
	wantErr(t, err, "M_UNKNOWN_TOKEN", 401)

	// A full user ID logs in too.
	cli := srv.Client(t)
	must[*mautrix.RespLogin](t)(cli.Login(ctx, &mautrix.ReqLogin{
		Type:       mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "@alice:" + srv.Config.ServerName},
		Password:   "password-alice",
	}))
}

func TestOpenRegistration(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Registration.Enabled = true })
	ctx := ctxT(t)
	cli := srv.Client(t)
	// The first call is the user-interactive-auth challenge.
	_, uia, err := cli.Register(ctx, &mautrix.ReqRegister[any]{Username: "carol", Password: "secret-carol"})
	if err != nil {
		t.Fatal(err)
	}
	if uia == nil || len(uia.Flows) == 0 || uia.Flows[0].Stages[0] != mautrix.AuthTypeDummy {
		t.Fatalf("want a dummy-stage challenge, got %+v", uia)
	}
	reg := must[*mautrix.RespRegister](t)(cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "carol", Password: "secret-carol"}))
	if reg.UserID.String() != "@carol:"+srv.Config.ServerName || reg.AccessToken == "" {
		t.Fatalf("register = %+v", reg)
	}
	_, err = cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "carol", Password: "again"})
	wantErr(t, err, "M_USER_IN_USE", 400)
	_, err = cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "Not Valid!", Password: "x"})
	wantErr(t, err, "M_INVALID_USERNAME", 400)

	avail := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/register/available?username=dave", "", "")
	if avail.status != 200 || avail.body["available"] != true {
		t.Fatalf("available = %+v", avail)
	}
}

func TestSharedSecretRegistrationChecksTheMAC(t *testing.T) {
	srv := testserver.New(t)
	nonce := rawRequest(t, "GET", srv.URL+"/_synapse/admin/v1/register", "", "")
	n, _ := nonce.body["nonce"].(string)
	if n == "" {
		t.Fatalf("no nonce: %+v", nonce)
	}
	bad := rawRequest(t, "POST", srv.URL+"/_synapse/admin/v1/register", "",
		`{"nonce":"`+n+`","username":"mallory","password":"x","admin":false,"mac":"00"}`)
	if bad.status != 403 || bad.body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("bad mac: %+v", bad)
	}
	// The nonce was used up by the failed attempt.
	reused := rawRequest(t, "POST", srv.URL+"/_synapse/admin/v1/register", "",
		`{"nonce":"`+n+`","username":"mallory","password":"x","admin":false,"mac":"00"}`)
	if reused.status != 400 {
		t.Fatalf("reused nonce: %+v", reused)
	}
}
