package userapi_test

import (
	"strings"
	"testing"

	"github.com/chappe-matrix/chappe/userapi"
)

func TestLogin(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		reg := e.register(t, "alice", "correct horse")
		for _, user := range []string{"alice", "@alice:test.local", "ALICE", "@Alice:test.local"} {
			resp := e.login(t, user, "correct horse", "")
			if resp.UserID != "@alice:test.local" {
				t.Errorf("login as %q: user_id = %q", user, resp.UserID)
			}
			if resp.DeviceID == reg.DeviceID || resp.AccessToken == reg.AccessToken {
				t.Errorf("login as %q reused the registration's device or token", user)
			}
			if dev := e.resolve(t, resp.AccessToken); dev == nil || dev.DeviceID != resp.DeviceID {
				t.Errorf("login as %q: token resolves to %+v", user, dev)
			}
		}
		// Logging in again does not end the other sessions.
		if e.resolve(t, reg.AccessToken) == nil {
			t.Error("the registration's token stopped working")
		}
	})
}

func TestLoginRefused(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		e.register(t, "alice", "correct horse")
		e.register(t, "nopass", "")
		for _, c := range []struct{ user, password string }{
			{"alice", "wrong"},
			{"alice", ""},
			{"@alice:test.local", "Correct horse"},
			{"nobody", "correct horse"},
			{"nopass", ""},
			{"not a name", "x"},
			{"@broken", "x"},
			{"", ""},
		} {
			_, err := userapi.Login.Call(e.ctx, e.base.Bus, &userapi.LoginRequest{User: c.user, Password: c.password})
			me := wantCode(t, err, "M_FORBIDDEN")
			if me.Message != "Invalid username or password" {
				t.Errorf("login %q/%q: message %q tells more than needed", c.user, c.password, me.Message)
			}
		}
		_, err := userapi.Login.Call(e.ctx, e.base.Bus, &userapi.LoginRequest{User: "@alice:elsewhere.test", Password: "correct horse"})
		wantCode(t, err, "M_FORBIDDEN")
		_, err = userapi.Login.Call(e.ctx, e.base.Bus, &userapi.LoginRequest{User: "alice", Password: strings.Repeat("x", 513)})
		wantCode(t, err, "M_INVALID_PARAM")
	})
}

// bcrypt reads 72 bytes; longer passwords must still count every byte.
func TestLoginLongPassword(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		long := strings.Repeat("p", 100) + "end"
		e.register(t, "alice", long)
		e.login(t, "alice", long, "")
		for _, wrong := range []string{strings.Repeat("p", 100) + "END", long[:72], long[:73]} {
			_, err := userapi.Login.Call(e.ctx, e.base.Bus, &userapi.LoginRequest{User: "alice", Password: wrong})
			wantCode(t, err, "M_FORBIDDEN")
		}
	})
}

func TestLoginDeactivated(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		reg := e.register(t, "mallory", "pw")
		if _, err := userapi.Deactivate.Call(e.ctx, e.base.Bus, &userapi.DeactivateRequest{UserID: reg.UserID}); err != nil {
			t.Fatal(err)
		}
		if dev := e.resolve(t, reg.AccessToken); dev != nil {
			t.Errorf("token of a deactivated account resolves to %+v", dev)
		}
		_, err := userapi.Login.Call(e.ctx, e.base.Bus, &userapi.LoginRequest{User: "mallory", Password: "pw"})
		wantCode(t, err, "M_USER_DEACTIVATED")
		// Without the password, deactivation is not revealed.
		_, err = userapi.Login.Call(e.ctx, e.base.Bus, &userapi.LoginRequest{User: "mallory", Password: "guess"})
		wantCode(t, err, "M_FORBIDDEN")
		// The name stays taken.
		_, err = userapi.Register.Call(e.ctx, e.base.Bus, &userapi.RegisterRequest{Localpart: "mallory", Password: "pw"})
		wantCode(t, err, "M_USER_IN_USE")
		_, err = userapi.Deactivate.Call(e.ctx, e.base.Bus, &userapi.DeactivateRequest{UserID: "@nobody:test.local"})
		wantCode(t, err, "M_NOT_FOUND")
	})
}

// Logging in with a device ID the user already has replaces its token.
func TestLoginReusesDevice(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		e.register(t, "alice", "pw")
		e.register(t, "bob", "pw")
		first := e.login(t, "alice", "pw", "PHONE")
		if first.DeviceID != "PHONE" {
			t.Fatalf("device_id = %q, want PHONE", first.DeviceID)
		}
		if e.resolve(t, first.AccessToken) == nil {
			t.Fatal("first token does not resolve")
		}
		second := e.login(t, "alice", "pw", "PHONE")
		if second.DeviceID != "PHONE" || second.AccessToken == first.AccessToken {
			t.Fatalf("second login = %+v", second)
		}
		if dev := e.resolve(t, first.AccessToken); dev != nil {
			t.Errorf("replaced token still resolves to %+v", dev)
		}
		if dev := e.resolve(t, second.AccessToken); dev == nil || dev.DeviceID != "PHONE" {
			t.Errorf("new token resolves to %+v", dev)
		}
		// Device IDs are per user: bob's PHONE is another device.
		bobs := e.login(t, "bob", "pw", "PHONE")
		if e.resolve(t, second.AccessToken) == nil {
			t.Error("bob's login ended alice's session")
		}
		if dev := e.resolve(t, bobs.AccessToken); dev == nil || dev.UserID != "@bob:test.local" {
			t.Errorf("bob's token resolves to %+v", dev)
		}
	})
}

func TestInitialDeviceDisplayName(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		e.register(t, "alice", "pw")
		resp, err := userapi.Login.Call(e.ctx, e.base.Bus, &userapi.LoginRequest{User: "alice", Password: "pw", DeviceID: "LAPTOP", InitialDisplayName: "My laptop"})
		if err != nil {
			t.Fatal(err)
		}
		if dev := e.resolve(t, resp.AccessToken); dev == nil || dev.DisplayName != "My laptop" {
			t.Errorf("device = %+v", dev)
		}
		// Ignored for a device that already exists.
		resp, err = userapi.Login.Call(e.ctx, e.base.Bus, &userapi.LoginRequest{User: "alice", Password: "pw", DeviceID: "LAPTOP", InitialDisplayName: "Renamed"})
		if err != nil {
			t.Fatal(err)
		}
		if dev := e.resolve(t, resp.AccessToken); dev == nil || dev.DisplayName != "My laptop" {
			t.Errorf("device = %+v", dev)
		}
	})
}
