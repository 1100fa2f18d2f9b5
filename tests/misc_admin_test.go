package tests

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

func TestAdminWhois(t *testing.T) {
	srv := testserver.New(t)
	admin := registerLimitsAdmin(t, srv, "root")
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	url := srv.URL + "/_matrix/client/v3/admin/whois/"
	r := rawRequest(t, "GET", url+alice.UserID.String(), admin.AccessToken, "")
	devices, _ := r.body["devices"].(map[string]any)
	if r.status != 200 || r.body["user_id"] != alice.UserID.String() || devices[alice.DeviceID.String()] == nil {
		t.Fatalf("admin whois: %d %v", r.status, r.body)
	}
	// mautrix's client, on oneself.
	who := must[mautrix.RespWhoIs](t)(alice.AdminWhoIs(ctxT(t), alice.UserID))
	if who.UserID != alice.UserID {
		t.Fatalf("self whois = %+v", who)
	}
	cases := []struct {
		name, url, token, code string
		status                 int
	}{
		{"another user's", url + alice.UserID.String(), bob.AccessToken, "M_FORBIDDEN", 403},
		{"unknown user", url + "@nobody:localhost", admin.AccessToken, "M_NOT_FOUND", 404},
		{"remote user", url + "@alice:elsewhere.example", admin.AccessToken, "M_NOT_FOUND", 404},
		{"not a user ID", url + "alice", admin.AccessToken, "M_INVALID_PARAM", 400},
		{"no token", url + alice.UserID.String(), "", "M_MISSING_TOKEN", 401},
	}
	for _, c := range cases {
		if r := rawRequest(t, "GET", c.url, c.token, ""); r.status != c.status || r.body["errcode"] != c.code {
			t.Errorf("%s: %d %v", c.name, r.status, r.body)
		}
	}
}

func TestAdminSuspend(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	admin := registerLimitsAdmin(t, srv, "root")
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"}))
	other := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"}))
	must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, room.RoomID))
	url := srv.URL + "/_matrix/client/v1/admin/suspend/" + bob.UserID.String()

	refused := []struct {
		name, method, url, token, body, code string
		status                               int
	}{
		{"not an admin", "PUT", url, alice.AccessToken, `{"suspended":true}`, "M_FORBIDDEN", 403},
		{"not an admin reads", "GET", url, alice.AccessToken, "", "M_FORBIDDEN", 403},
		{"oneself", "PUT", srv.URL + "/_matrix/client/v1/admin/suspend/" + admin.UserID.String(), admin.AccessToken, `{"suspended":true}`, "M_FORBIDDEN", 403},
		{"remote", "PUT", srv.URL + "/_matrix/client/v1/admin/suspend/@bob:elsewhere.example", admin.AccessToken, `{"suspended":true}`, "M_INVALID_PARAM", 400},
		{"unknown", "PUT", srv.URL + "/_matrix/client/v1/admin/suspend/@nobody:localhost", admin.AccessToken, `{"suspended":true}`, "M_NOT_FOUND", 404},
		{"missing", "PUT", url, admin.AccessToken, `{}`, "M_MISSING_PARAM", 400},
		{"wrong type", "PUT", url, admin.AccessToken, `{"suspended":"yes"}`, "M_BAD_JSON", 400},
	}
	for _, c := range refused {
		if r := rawRequest(t, c.method, c.url, c.token, c.body); r.status != c.status || r.body["errcode"] != c.code {
			t.Errorf("%s: %d %v", c.name, r.status, r.body)
		}
	}

	if r := rawRequest(t, "PUT", url, admin.AccessToken, `{"suspended":true}`); r.status != 200 || r.body["suspended"] != true {
		t.Fatalf("suspend: %d %v", r.status, r.body)
	}
	if r := rawRequest(t, "GET", url, admin.AccessToken, ""); r.status != 200 || r.body["suspended"] != true {
		t.Fatalf("read suspension: %d %v", r.status, r.body)
	}
	// Suspended: no sending, joining, creating rooms or profile changes...
	_, err := bob.SendText(ctx, room.RoomID, "hello")
	wantErr(t, err, "M_USER_SUSPENDED", 403)
	_, err = bob.JoinRoomByID(ctx, other.RoomID)
	wantErr(t, err, "M_USER_SUSPENDED", 403)
	_, err = bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
	wantErr(t, err, "M_USER_SUSPENDED", 403)
	_, err = bob.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: admin.UserID})
	wantErr(t, err, "M_USER_SUSPENDED", 403)
	wantErr(t, bob.SetDisplayName(ctx, "Bobby"), "M_USER_SUSPENDED", 403)
	// ...but reading works.
	must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, room.RoomID, "still there?"))
	sync := must[*mautrix.RespSync](t)(bob.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline))
	if texts := timelineTexts(sync, room.RoomID); len(texts) == 0 {
		t.Fatalf("suspended user's sync has no messages")
	}
	must[*mautrix.RespMessages](t)(bob.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 10))

	if r := rawRequest(t, "PUT", url, admin.AccessToken, `{"suspended":false}`); r.status != 200 || r.body["suspended"] != false {
		t.Fatalf("unsuspend: %d %v", r.status, r.body)
	}
	must[*mautrix.RespSendEvent](t)(bob.SendText(ctx, room.RoomID, "back"))
}

func TestAdminLock(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	admin := registerLimitsAdmin(t, srv, "root")
	root2 := registerLimitsAdmin(t, srv, "root2")
	bob := srv.RegisterUser(t, "bob")
	url := srv.URL + "/_matrix/client/v1/admin/lock/" + bob.UserID.String()
	if r := rawRequest(t, "PUT", url, bob.AccessToken, `{"locked":true}`); r.status != 403 || r.body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("not admin: %d %v", r.status, r.body)
	}
	// Another admin is out of reach.
	if r := rawRequest(t, "PUT", srv.URL+"/_matrix/client/v1/admin/lock/"+root2.UserID.String(), admin.AccessToken, `{"locked":true}`); r.status != 403 {
		t.Fatalf("lock another admin: %d %v", r.status, r.body)
	}
	if r := rawRequest(t, "PUT", url, admin.AccessToken, `{"locked":true}`); r.status != 200 || r.body["locked"] != true {
		t.Fatalf("lock: %d %v", r.status, r.body)
	}
	// Every request: 401 M_USER_LOCKED with soft_logout.
	r := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/account/whoami", bob.AccessToken, "")
	if r.status != 401 || r.body["errcode"] != "M_USER_LOCKED" || r.body["soft_logout"] != true {
		t.Fatalf("locked whoami: %d %v", r.status, r.body)
	}
	_, err := bob.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline)
	wantErr(t, err, "M_USER_LOCKED", 401)
	// No new sessions either.
	_, err = srv.Client(t).Login(ctx, &mautrix.ReqLogin{
		Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "bob"}, Password: "password-bob",
	})
	wantErr(t, err, "M_USER_LOCKED", 401)
	if r := rawRequest(t, "GET", url, admin.AccessToken, ""); r.status != 200 || r.body["locked"] != true {
		t.Fatalf("read lock: %d %v", r.status, r.body)
	}
	// Unlocked, the same token works again: locking kept the session.
	if r := rawRequest(t, "PUT", url, admin.AccessToken, `{"locked":false}`); r.status != 200 || r.body["locked"] != false {
		t.Fatalf("unlock: %d %v", r.status, r.body)
	}
	if who := must[*mautrix.RespWhoami](t)(bob.Whoami(ctx)); who.UserID != bob.UserID {
		t.Fatalf("whoami after unlock = %v", who.UserID)
	}
	// Locked again, logging out is still allowed.
	rawRequest(t, "PUT", url, admin.AccessToken, `{"locked":true}`)
	must[*mautrix.RespLogout](t)(bob.Logout(ctx))
}
