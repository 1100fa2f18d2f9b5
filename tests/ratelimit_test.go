package tests

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/synapseadmin"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// withRateLimits turns limits on with buckets that barely refill, so the
// test sees the burst and then refusals.
func withRateLimits(actions map[string]config.RateLimit) testserver.Option {
	return func(c *config.Config) {
		c.RateLimits.Enabled = true
		c.RateLimits.Actions = actions
	}
}

func TestRateLimits(t *testing.T) {
	slow := func(burst int) config.RateLimit { return config.RateLimit{PerSecond: 0.001, Burst: burst} }
	srv := testserver.New(t, withRateLimits(map[string]config.RateLimit{
		"message":  slow(2),
		"login":    slow(2),
		"register": slow(4),
	}))
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice") // registers 1, 2 and 3 of 4
	bob := srv.RegisterUser(t, "bob")
	admin := registerLimitsAdmin(t, srv, "root")

	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})).RoomID
	must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, room))
	must[*mautrix.RespJoinRoom](t)(admin.JoinRoomByID(ctx, room))

	send := func(cli *mautrix.Client, txn string) rawResponse {
		url := fmt.Sprintf("%s/_matrix/client/v3/rooms/%s/send/m.room.message/%s", srv.URL, room, txn)
		return rawRequest(t, "PUT", url, cli.AccessToken, `{"msgtype":"m.text","body":"hi"}`)
	}
	t.Run("a user past the burst is refused", func(t *testing.T) {
		for i := range 2 {
			if r := send(alice, fmt.Sprint("a", i)); r.status != 200 {
				t.Fatalf("message %d of the burst: %d %v", i+1, r.status, r.body)
			}
		}
		wantLimited(t, send(alice, "a-over"))
	})
	t.Run("other users keep their own budget", func(t *testing.T) {
		if _, err := bob.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "hi"}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("admins are not limited", func(t *testing.T) {
		for i := range 5 {
			if r := send(admin, fmt.Sprint("root", i)); r.status != 200 {
				t.Fatalf("admin message %d: %d %v", i+1, r.status, r.body)
			}
		}
	})
	t.Run("unauthenticated requests are limited by address", func(t *testing.T) {
		login := `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"password-alice"}`
		for i := range 2 {
			if r := rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/login", "", login); r.status != 200 {
				t.Fatalf("login %d of the burst: %d %v", i+1, r.status, r.body)
			}
		}
		wantLimited(t, rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/login", "", login))
		// Registration has its own bucket: one of four left.
		srv.RegisterUser(t, "carol")
		if _, err := limitsSharedSecretRegister(t, srv, "dave", false); err == nil {
			t.Fatal("registration past the burst succeeded")
		} else {
			wantErr(t, err, "M_LIMIT_EXCEEDED", 429)
		}
	})
	t.Run("the refusal says when to retry", func(t *testing.T) {
		req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/_matrix/client/v3/rooms/%s/send/m.room.message/h", srv.URL, room), strings.NewReader(`{"body":"x"}`))
		req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != 429 || err != nil || secs < 1 {
			t.Fatalf("got %d with Retry-After %q, want 429 and a positive number of seconds", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	})
}

func wantLimited(t *testing.T, r rawResponse) {
	t.Helper()
	if r.status != 429 || r.body["errcode"] != "M_LIMIT_EXCEEDED" {
		t.Fatalf("got %d %v, want 429 M_LIMIT_EXCEEDED", r.status, r.body)
	}
	if ms, ok := r.body["retry_after_ms"].(float64); !ok || ms <= 0 {
		t.Fatalf("retry_after_ms = %v, want a positive number", r.body["retry_after_ms"])
	}
}

// registerLimitsAdmin makes a server admin through the shared-secret endpoint.
func registerLimitsAdmin(t *testing.T, srv *testserver.Server, localpart string) *mautrix.Client {
	t.Helper()
	resp, err := limitsSharedSecretRegister(t, srv, localpart, true)
	if err != nil {
		t.Fatalf("register admin %s: %v", localpart, err)
	}
	cli, err := mautrix.NewClient(srv.URL, resp.UserID, resp.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

func limitsSharedSecretRegister(t *testing.T, srv *testserver.Server, localpart string, admin bool) (*mautrix.RespRegister, error) {
	t.Helper()
	a := &synapseadmin.Client{Client: srv.Client(t)}
	return a.SharedSecretRegister(context.Background(), testserver.SharedSecret, synapseadmin.ReqSharedSecretRegister{
		Username: localpart, Password: "password-" + localpart, Admin: admin,
	})
}
