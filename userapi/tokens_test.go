package userapi_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chappe-matrix/chappe/userapi"
)

func TestUnknownToken(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		resolve := userapi.NewTokenResolver(e.base.Bus)
		for _, token := range []string{"", "cht_nope", "syt_abc", strings.Repeat("x", 10000)} {
			if dev := e.resolve(t, token); dev != nil {
				t.Errorf("token %.10q resolves to %+v", token, dev)
			}
			dev, err := resolve(e.ctx, token)
			if err != nil || dev != nil {
				t.Errorf("resolver: token %.10q gives %+v, %v", token, dev, err)
			}
		}
	})
}

func TestLogout(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		e.register(t, "alice", "pw")
		phone := e.login(t, "alice", "pw", "")
		laptop := e.login(t, "alice", "pw", "")
		e.resolve(t, phone.AccessToken) // cached by the userapi now

		e.logout(t, &userapi.LogoutRequest{UserID: phone.UserID, DeviceID: phone.DeviceID})
		if dev := e.resolve(t, phone.AccessToken); dev != nil {
			t.Errorf("logged-out token resolves to %+v", dev)
		}
		if e.resolve(t, laptop.AccessToken) == nil {
			t.Error("logging out the phone ended the laptop's session")
		}
		// The device is gone: logging in with its ID creates it afresh.
		again := e.login(t, "alice", "pw", phone.DeviceID)
		if e.resolve(t, again.AccessToken) == nil {
			t.Error("login on a logged-out device ID failed")
		}
		// Logging out an unknown device is harmless.
		e.logout(t, &userapi.LogoutRequest{UserID: phone.UserID, DeviceID: "NOSUCHDEVICE"})

		_, err := userapi.Logout.Call(e.ctx, e.base.Bus, &userapi.LogoutRequest{UserID: phone.UserID})
		wantCode(t, err, "M_MISSING_PARAM")
	})
}

func TestLogoutAll(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		e.register(t, "alice", "pw")
		bob := e.register(t, "bob", "pw")
		var tokens []string
		for range 3 {
			tokens = append(tokens, e.login(t, "alice", "pw", "").AccessToken)
		}
		for _, tok := range tokens {
			e.resolve(t, tok)
		}
		e.logout(t, &userapi.LogoutRequest{UserID: "@alice:test.local", All: true})
		for i, tok := range tokens {
			if dev := e.resolve(t, tok); dev != nil {
				t.Errorf("token %d resolves to %+v after logout all", i, dev)
			}
		}
		if e.resolve(t, bob.AccessToken) == nil {
			t.Error("alice's logout all ended bob's session")
		}
	})
}

// countQueries counts QueryAccessToken requests crossing the bus.
func countQueries(t *testing.T, e *env) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	sub, err := e.base.Bus.NC.Subscribe(e.base.Bus.Subject(userapi.QueryAccessToken.Subject), func(*nats.Msg) { n.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.base.Bus.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	return &n
}

// The resolver of other processes caches answers, and a logout evicts them
// from that cache well before its TTL.
func TestTokenResolverCacheAndRevocation(t *testing.T) {
	runOverNATS(t, func(t *testing.T, e *env) {
		resolve := userapi.NewTokenResolver(e.base.Bus)
		reg := e.register(t, "alice", "pw")
		other := e.login(t, "alice", "pw", "")
		queries := countQueries(t, e)

		for range 3 {
			dev, err := resolve(e.ctx, reg.AccessToken)
			if err != nil || dev == nil || dev.UserID != reg.UserID || dev.DeviceID != reg.DeviceID {
				t.Fatalf("resolve = %+v, %v", dev, err)
			}
			dev.UserID = "@tampered:test.local" // must not reach the cache
		}
		if dev, _ := resolve(e.ctx, reg.AccessToken); dev.UserID != reg.UserID {
			t.Errorf("cache handed out its own copy: %+v", dev)
		}
		// The subscriber sees the requests asynchronously.
		eventually(t, "one query", func() bool { return queries.Load() == 1 })
		time.Sleep(50 * time.Millisecond)
		if n := queries.Load(); n != 1 {
			t.Errorf("%d queries for 4 resolutions, want 1 (cached)", n)
		}
		if _, err := resolve(e.ctx, other.AccessToken); err != nil {
			t.Fatal(err)
		}

		e.logout(t, &userapi.LogoutRequest{UserID: reg.UserID, DeviceID: reg.DeviceID})
		eventually(t, "revoked in the resolver", func() bool {
			dev, err := resolve(e.ctx, reg.AccessToken)
			return err == nil && dev == nil
		})
		if dev, err := resolve(e.ctx, other.AccessToken); err != nil || dev == nil {
			t.Errorf("the other device's token was dropped: %+v, %v", dev, err)
		}
	})
}

// A second userapi process caches tokens too; a logout served by either
// evicts them from both.
func TestRevocationReachesOtherInstances(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		second := e.start(t)
		reg := e.register(t, "alice", "pw")
		for _, api := range []*userapi.UserAPI{e.api, second} {
			if dev, err := userapi.LookupToken(e.ctx, api, reg.AccessToken); err != nil || dev == nil {
				t.Fatalf("lookup = %+v, %v", dev, err)
			}
		}
		e.logout(t, &userapi.LogoutRequest{UserID: reg.UserID, All: true})
		for _, api := range []*userapi.UserAPI{e.api, second} {
			eventually(t, "revoked in every instance", func() bool {
				dev, err := userapi.LookupToken(e.ctx, api, reg.AccessToken)
				return err == nil && dev == nil
			})
		}
	})
}

// Device reuse revokes the old token in the resolver's cache too.
func TestTokenResolverDeviceReuse(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		resolve := userapi.NewTokenResolver(e.base.Bus)
		e.register(t, "alice", "pw")
		first := e.login(t, "alice", "pw", "PHONE")
		if dev, err := resolve(e.ctx, first.AccessToken); err != nil || dev == nil {
			t.Fatalf("resolve = %+v, %v", dev, err)
		}
		e.login(t, "alice", "pw", "PHONE")
		eventually(t, "revoked in the resolver", func() bool {
			dev, err := resolve(e.ctx, first.AccessToken)
			return err == nil && dev == nil
		})
	})
}

func TestLastSeen(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		reg := e.register(t, "alice", "pw")
		later := time.Now().Add(2 * time.Minute)
		userapi.SetClock(e.api, func() time.Time { return later })
		if _, err := userapi.LookupToken(e.ctx, e.api, reg.AccessToken); err != nil {
			t.Fatal(err)
		}
		userapi.FlushLastSeen(e.api)
		var seen int64
		if err := e.base.DB.QueryRowContext(e.ctx, `SELECT last_seen_ms FROM ua_devices WHERE user_id = $1 AND device_id = $2`,
			reg.UserID, reg.DeviceID).Scan(&seen); err != nil {
			t.Fatal(err)
		}
		if seen != later.UnixMilli() {
			t.Errorf("last_seen_ms = %d, want %d", seen, later.UnixMilli())
		}
	})
}
