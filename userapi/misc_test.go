package userapi_test

import (
	"testing"
	"time"

	"github.com/chappe-matrix/chappe/userapi"
)

// An OpenID token resolves to its user until it expires; the federation's
// openid/userinfo will rely on that.
func TestOpenIDTokens(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		alice := e.register(t, "alice", "pw")
		tok, err := userapi.CreateOpenIDToken.Call(e.ctx, e.base.Bus, &userapi.CreateOpenIDTokenRequest{UserID: alice.UserID})
		if err != nil {
			t.Fatal(err)
		}
		got, err := userapi.QueryOpenIDToken.Call(e.ctx, e.base.Bus, &userapi.QueryOpenIDTokenRequest{AccessToken: tok.AccessToken})
		if err != nil || got.UserID != alice.UserID {
			t.Fatalf("resolve = %+v, %v", got, err)
		}
		for _, bad := range []string{"", "cho_nope", alice.AccessToken} {
			got, err := userapi.QueryOpenIDToken.Call(e.ctx, e.base.Bus, &userapi.QueryOpenIDTokenRequest{AccessToken: bad})
			if err != nil || got.UserID != "" {
				t.Errorf("token %.10q resolves to %+v, %v", bad, got, err)
			}
		}
		if _, err := userapi.CreateOpenIDToken.Call(e.ctx, e.base.Bus, &userapi.CreateOpenIDTokenRequest{UserID: "@bob:elsewhere"}); err == nil {
			t.Fatal("token issued for a remote user")
		}
		userapi.SetClock(e.api, func() time.Time { return time.Now().Add(2 * time.Hour) })
		got, err = userapi.QueryOpenIDToken.Call(e.ctx, e.base.Bus, &userapi.QueryOpenIDTokenRequest{AccessToken: tok.AccessToken})
		if err != nil || got.UserID != "" {
			t.Fatalf("expired token resolves to %+v, %v", got, err)
		}
	})
}

// Locking and suspending reach the token lookup at once, caches included.
func TestAccountFlagsInTokenLookup(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		bob := e.register(t, "bob", "pw")
		resolve := userapi.NewTokenResolver(e.base.Bus)
		if dev, _ := resolve(e.ctx, bob.AccessToken); dev == nil || dev.Suspended || dev.Locked {
			t.Fatalf("before: %+v", dev)
		}
		yes := true
		if _, err := userapi.SetAccountFlags.Call(e.ctx, e.base.Bus, &userapi.SetAccountFlagsRequest{UserID: bob.UserID, Suspended: &yes, Locked: &yes}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			dev, _ := resolve(e.ctx, bob.AccessToken)
			if dev != nil && dev.Suspended && dev.Locked {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("flags not seen by the resolver: %+v", dev)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if dev := e.resolve(t, bob.AccessToken); dev == nil || !dev.Locked {
			t.Fatalf("userapi's own lookup: %+v", dev)
		}
	})
}
