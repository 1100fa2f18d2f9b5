package tests

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// A presence update from another server keeps how long ago the user was
// last active, by that server's account: an agent idle for ten minutes on
// their ministry's server does not show as active here.
func TestFederationPresenceKeepsLastActiveAgo(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB)
	alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")
	// Bob joins without ever syncing: his server has no presence of its
	// own to send for him, which would race with the update below.
	created, err := alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	bob.join(ctx, string(created.RoomID), srv[0].Config.ServerName)
	alice.waitMember(created.RoomID, bob.id(), event.MembershipJoin)

	status, body := asServer(t, srv[1], srv[0], "PUT", "/_matrix/federation/v1/send/presence-1", map[string]any{
		"origin":           srv[1].Config.ServerName,
		"origin_server_ts": 1,
		"pdus":             []any{},
		"edus": []any{map[string]any{"edu_type": "m.presence", "content": map[string]any{"push": []any{map[string]any{
			"user_id": bob.id().String(), "presence": "unavailable", "status_msg": "en réunion",
			"last_active_ago": 600_000, "currently_active": false,
		}}}}},
	})
	if status != 200 {
		t.Fatalf("send: %d %s", status, body)
	}
	got := rawRequest(t, "GET", srv[0].URL+"/_matrix/client/v3/presence/"+bob.id().String()+"/status", alice.cli.AccessToken, "")
	wantStatus(t, got, 200, "")
	ago, _ := got.body["last_active_ago"].(float64)
	if got.body["presence"] != "unavailable" || got.body["status_msg"] != "en réunion" || ago < 600_000 || ago > 700_000 {
		t.Fatalf("bob's presence as alice sees it: %v", got.body)
	}
	if got.body["currently_active"] != false {
		t.Fatalf("bob idle for ten minutes shows as currently active: %v", got.body)
	}
}
