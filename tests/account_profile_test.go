package tests

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

func TestProfile(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"}))
	must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, room.RoomID))

	must[any](t)(nil, alice.SetDisplayName(ctx, "Alice Liddell"))
	avatar := id.ContentURI{Homeserver: "localhost", FileID: "rabbit"}
	must[any](t)(nil, alice.SetAvatarURL(ctx, avatar))

	p := must[*mautrix.RespUserProfile](t)(bob.GetProfile(ctx, alice.UserID))
	if p.DisplayName != "Alice Liddell" || p.AvatarURL != avatar {
		t.Fatalf("profile = %+v", p)
	}
	name := must[*mautrix.RespUserDisplayName](t)(bob.GetDisplayName(ctx, alice.UserID))
	if name.DisplayName != "Alice Liddell" {
		t.Fatalf("displayname = %+v", name)
	}
	if got := must[id.ContentURI](t)(bob.GetAvatarURL(ctx, alice.UserID)); got != avatar {
		t.Fatalf("avatar = %v", got)
	}

	// The member event in the joined room follows.
	var member event.MemberEventContent
	must[any](t)(nil, bob.StateEvent(ctx, room.RoomID, event.StateMember, alice.UserID.String(), &member))
	if member.Displayname != "Alice Liddell" || member.AvatarURL != avatar.CUString() || member.Membership != event.MembershipJoin {
		t.Fatalf("member event = %+v", member)
	}

	v3 := srv.URL + "/_matrix/client/v3/profile/"
	cases := []struct {
		name, method, url, token, body, code string
		status                               int
	}{
		{"someone else's name", "PUT", v3 + string(alice.UserID) + "/displayname", bob.AccessToken, `{"displayname":"Mallory"}`, "M_FORBIDDEN", 403},
		{"too long", "PUT", v3 + string(alice.UserID) + "/displayname", alice.AccessToken, `{"displayname":"` + strings.Repeat("x", 300) + `"}`, "M_INVALID_PARAM", 400},
		{"missing", "PUT", v3 + string(alice.UserID) + "/displayname", alice.AccessToken, `{}`, "M_MISSING_PARAM", 400},
		{"wrong type", "PUT", v3 + string(alice.UserID) + "/displayname", alice.AccessToken, `{"displayname":3}`, "M_BAD_JSON", 400},
		{"not mxc", "PUT", v3 + string(alice.UserID) + "/avatar_url", alice.AccessToken, `{"avatar_url":"https://example.com/a.png"}`, "M_INVALID_PARAM", 400},
		{"no token", "PUT", v3 + string(alice.UserID) + "/avatar_url", "", `{"avatar_url":""}`, "M_MISSING_TOKEN", 401},
		{"unknown user", "GET", v3 + "@nobody:localhost", "", "", "M_NOT_FOUND", 404},
		{"remote user, federation off", "GET", v3 + "@alice:elsewhere.example", "", "", "M_FORBIDDEN", 403},
		{"not a user ID", "GET", v3 + "alice", "", "", "M_INVALID_PARAM", 400},
		{"unset field", "GET", v3 + string(alice.UserID) + "/m.tz", "", "", "M_NOT_FOUND", 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rawRequest(t, c.method, c.url, c.token, c.body)
			if r.status != c.status || r.body["errcode"] != c.code {
				t.Fatalf("got %d %v, want %d %s", r.status, r.body, c.status, c.code)
			}
		})
	}

	// Clearing the name: the field is gone (mautrix reads the 404 as "").
	must[any](t)(nil, alice.SetDisplayName(ctx, ""))
	if r := rawRequest(t, "GET", v3+string(alice.UserID)+"/displayname", "", ""); r.status != 404 || r.body["errcode"] != "M_NOT_FOUND" {
		t.Fatalf("cleared displayname = %+v", r)
	}
	var cleared event.MemberEventContent
	must[any](t)(nil, bob.StateEvent(ctx, room.RoomID, event.StateMember, alice.UserID.String(), &cleared))
	if cleared.Displayname != "" || cleared.AvatarURL != avatar.CUString() {
		t.Fatalf("member event after clearing = %+v", cleared)
	}
}

func TestUserDirectory(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	srv.RegisterUser(t, "carol")
	must[any](t)(nil, bob.SetDisplayName(ctx, "Robert Tables"))

	res := must[*mautrix.RespSearchUserDirectory](t)(alice.SearchUserDirectory(ctx, "tables", 10))
	// The spec's key is display_name (mautrix reads "displayname": see Extra).
	if len(res.Results) != 1 || res.Results[0].UserID != bob.UserID || res.Results[0].Extra["display_name"] != "Robert Tables" || res.Limited {
		t.Fatalf("search by name = %+v", res)
	}
	res = must[*mautrix.RespSearchUserDirectory](t)(alice.SearchUserDirectory(ctx, "CAROL", 10))
	if len(res.Results) != 1 || res.Results[0].UserID != id.UserID("@carol:"+srv.Config.ServerName) {
		t.Fatalf("search by ID = %+v", res)
	}
	res = must[*mautrix.RespSearchUserDirectory](t)(alice.SearchUserDirectory(ctx, ":"+srv.Config.ServerName, 2))
	if len(res.Results) != 2 || !res.Limited {
		t.Fatalf("limited search = %+v", res)
	}
	// LIKE wildcards match only themselves.
	res = must[*mautrix.RespSearchUserDirectory](t)(alice.SearchUserDirectory(ctx, "%", 10))
	if len(res.Results) != 0 {
		t.Fatalf("wildcard search = %+v", res)
	}
	r := rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/user_directory/search", alice.AccessToken, `{}`)
	if r.status != 400 || r.body["errcode"] != "M_MISSING_PARAM" {
		t.Fatalf("no search term: %+v", r)
	}
}
