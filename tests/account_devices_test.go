package tests

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

func TestDevices(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	laptop := loginAgain(t, alice, "password-alice")

	devs := must[*mautrix.RespDevicesInfo](t)(alice.GetDevicesInfo(ctx))
	if len(devs.Devices) != 2 {
		t.Fatalf("devices = %+v", devs.Devices)
	}
	must[any](t)(nil, alice.SetDeviceInfo(ctx, laptop.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: "Laptop"}))
	info := must[*mautrix.RespDeviceInfo](t)(alice.GetDeviceInfo(ctx, laptop.DeviceID))
	if info.DisplayName != "Laptop" || info.DeviceID != laptop.DeviceID || info.LastSeenTS == 0 {
		t.Fatalf("device = %+v", info)
	}
	_, err := alice.GetDeviceInfo(ctx, "NOSUCHDEVICE")
	wantErr(t, err, "M_NOT_FOUND", 404)
	wantErr(t, alice.SetDeviceInfo(ctx, "NOSUCHDEVICE", &mautrix.ReqDeviceInfo{DisplayName: "x"}), "M_NOT_FOUND", 404)
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'a'
	}
	wantErr(t, alice.SetDeviceInfo(ctx, laptop.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: string(long)}), "M_INVALID_PARAM", 400)

	// Another user's device is unknown to alice.
	bob := srv.RegisterUser(t, "bob")
	_, err = alice.GetDeviceInfo(ctx, bob.DeviceID)
	wantErr(t, err, "M_NOT_FOUND", 404)
	url := srv.URL + "/_matrix/client/v3/devices/"
	if r := rawRequest(t, "DELETE", url+"NOSUCHDEVICE", alice.AccessToken, `{}`); r.status != 404 {
		t.Fatalf("delete unknown device: %+v", r)
	}

	// Deleting a device: challenge, wrong password, right password.
	session := wantUIA(t, rawRequest(t, "DELETE", url+string(laptop.DeviceID), alice.AccessToken, `{}`), "", "m.login.password")
	wrong := rawRequest(t, "DELETE", url+string(laptop.DeviceID), alice.AccessToken,
		`{"auth":`+passwordAuth(session, "alice", "wrong")+`}`)
	if s := wantUIA(t, wrong, "M_FORBIDDEN", "m.login.password"); s != session {
		t.Fatalf("session changed: %s vs %s", s, session)
	}
	// Someone else's password does not do either.
	other := rawRequest(t, "DELETE", url+string(laptop.DeviceID), alice.AccessToken,
		`{"auth":`+passwordAuth(session, "bob", "password-bob")+`}`)
	if other.status != 403 {
		t.Fatalf("other user's auth: %+v", other)
	}
	ok := rawRequest(t, "DELETE", url+string(laptop.DeviceID), alice.AccessToken,
		`{"auth":`+passwordAuth(session, "alice", "password-alice")+`}`)
	if ok.status != 200 {
		t.Fatalf("delete device: %+v", ok)
	}
	_, err = laptop.Whoami(ctx)
	wantErr(t, err, "M_UNKNOWN_TOKEN", 401)
	// The session authorised one operation only.
	again := rawRequest(t, "DELETE", url+string(alice.DeviceID), alice.AccessToken,
		`{"auth":`+passwordAuth(session, "alice", "password-alice")+`}`)
	if again.status != 400 {
		t.Fatalf("reused session: %+v", again)
	}

	// A session begun for one operation does not authorise another.
	tablet := loginAgain(t, alice, "password-alice")
	pwSession := wantUIA(t, rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/account/password", alice.AccessToken,
		`{"new_password":"x"}`), "", "m.login.password")
	cross := rawRequest(t, "DELETE", url+string(tablet.DeviceID), alice.AccessToken,
		`{"auth":`+passwordAuth(pwSession, "alice", "password-alice")+`}`)
	if cross.status != 403 {
		t.Fatalf("session of another operation: %+v", cross)
	}

	// delete_devices through mautrix, the current device included: it is
	// logged out.
	auth := &mautrix.ReqUIAuthLogin{BaseAuthData: mautrix.BaseAuthData{Type: mautrix.AuthTypePassword}, User: "alice", Password: "password-alice"}
	must[any](t)(nil, alice.DeleteDevices(ctx, &mautrix.ReqDeleteDevices[any]{Devices: []id.DeviceID{tablet.DeviceID, alice.DeviceID}, Auth: auth}))
	_, err = tablet.Whoami(ctx)
	wantErr(t, err, "M_UNKNOWN_TOKEN", 401)
	_, err = alice.Whoami(ctx)
	wantErr(t, err, "M_UNKNOWN_TOKEN", 401)

	missing := rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/delete_devices", bob.AccessToken, `{}`)
	if missing.status != 400 || missing.body["errcode"] != "M_MISSING_PARAM" {
		t.Fatalf("delete_devices without devices: %+v", missing)
	}
}
