package userapi_test

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/chappe-matrix/chappe/userapi"

	"github.com/chappe-matrix/chappe/internal/sqlutil/sqltest"
)

func TestRegister(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		resp := e.register(t, "alice", "correct horse")
		if resp.UserID != "@alice:test.local" {
			t.Errorf("user_id = %q", resp.UserID)
		}
		if !regexp.MustCompile(`^[A-Z]{10}$`).MatchString(resp.DeviceID) {
			t.Errorf("device_id = %q, want 10 uppercase letters", resp.DeviceID)
		}
		if !strings.HasPrefix(resp.AccessToken, "cht_") || len(resp.AccessToken) != 4+43 {
			t.Errorf("access_token = %q, want cht_ and 43 base64url characters", resp.AccessToken)
		}
		dev := e.resolve(t, resp.AccessToken)
		if dev == nil || dev.UserID != resp.UserID || dev.DeviceID != resp.DeviceID || dev.IsAdmin {
			t.Errorf("token resolves to %+v", dev)
		}

		_, err := userapi.Register.Call(e.ctx, e.base.Bus, &userapi.RegisterRequest{Localpart: "alice", Password: "other"})
		wantCode(t, err, "M_USER_IN_USE")
	})
}

func TestRegisterOptions(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		resp, err := userapi.Register.Call(e.ctx, e.base.Bus, &userapi.RegisterRequest{
			Localpart: "bot", Password: "pw", Admin: true, DisplayName: "The Bot", DeviceID: "BOTDEVICE",
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp.DeviceID != "BOTDEVICE" {
			t.Errorf("device_id = %q, want the requested one", resp.DeviceID)
		}
		if dev := e.resolve(t, resp.AccessToken); dev == nil || !dev.IsAdmin {
			t.Errorf("admin token resolves to %+v", dev)
		}
		p, err := userapi.QueryProfile.Call(e.ctx, e.base.Bus, &userapi.QueryProfileRequest{UserID: "@bot:test.local"})
		if err != nil || p.DisplayName != "The Bot" {
			t.Errorf("profile = %+v, %v", p, err)
		}

		resp, err = userapi.Register.Call(e.ctx, e.base.Bus, &userapi.RegisterRequest{Localpart: "quiet", Password: "pw", InhibitLogin: true})
		if err != nil {
			t.Fatal(err)
		}
		if *resp != (userapi.LoginResponse{UserID: "@quiet:test.local"}) {
			t.Errorf("inhibit_login response = %+v, want the user ID only", resp)
		}
		// The account exists all the same.
		e.login(t, "quiet", "pw", "")
	})
}

func TestRegisterInvalidNames(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		// The full user ID may be 255 bytes: "@" + localpart + ":test.local".
		longest := strings.Repeat("a", 255-1-len(":test.local"))
		for _, lp := range []string{"", "Alice", "al ice", "al:ice", "al@ice", "élise", "a#b", "tab\t", longest + "a"} {
			_, err := userapi.Register.Call(e.ctx, e.base.Bus, &userapi.RegisterRequest{Localpart: lp, Password: "pw"})
			wantCode(t, err, "M_INVALID_USERNAME")
			_, err = userapi.QueryAvailable.Call(e.ctx, e.base.Bus, &userapi.QueryAvailableRequest{Localpart: lp})
			wantCode(t, err, "M_INVALID_USERNAME")
		}
		for _, lp := range []string{"a.b_c=d-e/f+g", "0", longest} {
			if resp := e.register(t, lp, "pw"); resp.UserID != "@"+lp+":test.local" {
				t.Errorf("registered %q as %q", lp, resp.UserID)
			}
		}
	})
}

func TestRegisterPasswordTooLong(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		_, err := userapi.Register.Call(e.ctx, e.base.Bus, &userapi.RegisterRequest{Localpart: "bob", Password: strings.Repeat("x", 513)})
		wantCode(t, err, "M_INVALID_PARAM")
		e.register(t, "bob", strings.Repeat("x", 512))
	})
}

// Two processes registering the same name at once: exactly one wins.
func TestRegisterRace(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		e.start(t) // a second instance shares the requests
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				_, errs[i] = userapi.Register.Call(e.ctx, e.base.Bus, &userapi.RegisterRequest{Localpart: "carol", Password: "pw"})
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else {
				wantCode(t, err, "M_USER_IN_USE")
			}
		}
		if ok != 1 {
			t.Errorf("%d registrations succeeded, want 1", ok)
		}
	})
}

func TestQueryAvailable(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		e.register(t, "dave", "pw")
		for lp, want := range map[string]bool{"dave": false, "erin": true} {
			resp, err := userapi.QueryAvailable.Call(e.ctx, e.base.Bus, &userapi.QueryAvailableRequest{Localpart: lp})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Available != want {
				t.Errorf("%s available = %v, want %v", lp, resp.Available, want)
			}
		}
	})
}

func TestQueryProfile(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		e.register(t, "frank", "pw")
		p, err := userapi.QueryProfile.Call(e.ctx, e.base.Bus, &userapi.QueryProfileRequest{UserID: "@frank:test.local"})
		if err != nil {
			t.Fatal(err)
		}
		if *p != (userapi.Profile{DisplayName: "frank"}) {
			t.Errorf("profile = %+v, want the localpart as display name", p)
		}
		for _, id := range []string{"@nobody:test.local", "@frank:elsewhere.test", "frank", ""} {
			_, err := userapi.QueryProfile.Call(e.ctx, e.base.Bus, &userapi.QueryProfileRequest{UserID: id})
			wantCode(t, err, "M_NOT_FOUND")
		}
	})
}

// The CLI creates accounts without a bus, on a database nothing migrated.
func TestCreateAccount(t *testing.T) {
	for _, backend := range sqltest.Backends() {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			db := sqltest.Open(t, backend)
			userID, err := userapi.CreateAccount(ctx, db, serverName, "admin", "s3cret", true)
			if err != nil {
				t.Fatal(err)
			}
			if userID != "@admin:test.local" {
				t.Errorf("user ID = %q", userID)
			}
			_, err = userapi.CreateAccount(ctx, db, serverName, "admin", "s3cret", false)
			wantCode(t, err, "M_USER_IN_USE")
			_, err = userapi.CreateAccount(ctx, db, serverName, "Bad Name", "s3cret", false)
			wantCode(t, err, "M_INVALID_USERNAME")
		})
	}
}

func TestCreateAccountThenLogin(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		if _, err := userapi.CreateAccount(e.ctx, e.base.DB, serverName, "root", "s3cret", true); err != nil {
			t.Fatal(err)
		}
		resp := e.login(t, "root", "s3cret", "")
		if dev := e.resolve(t, resp.AccessToken); dev == nil || !dev.IsAdmin {
			t.Errorf("token resolves to %+v, want an admin", dev)
		}
	})
}
