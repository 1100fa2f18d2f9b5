package tests

import (
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

func TestRoomSummary(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	public := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "public_chat", Name: "Agora", Topic: "everyone", RoomAliasName: "agora",
	}))
	private := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Secret"}))
	v1 := srv.URL + "/_matrix/client/v1/room_summary/"

	r := rawRequest(t, "GET", v1+url.PathEscape("#agora:localhost"), "", "")
	if r.status != 200 || r.body["room_id"] != public.RoomID.String() || r.body["name"] != "Agora" || r.body["join_rule"] != "public" ||
		r.body["room_version"] != "12" || r.body["membership"] != nil || r.body["num_joined_members"] != float64(1) {
		t.Fatalf("public, unauthenticated: %d %v", r.status, r.body)
	}
	r = rawRequest(t, "GET", v1+public.RoomID.String(), alice.AccessToken, "")
	if r.status != 200 || r.body["membership"] != "join" {
		t.Fatalf("public, member: %d %v", r.status, r.body)
	}
	r = rawRequest(t, "GET", v1+private.RoomID.String(), alice.AccessToken, "")
	if r.status != 200 || r.body["name"] != "Secret" || r.body["join_rule"] != "invite" {
		t.Fatalf("private, member: %d %v", r.status, r.body)
	}
	cases := []struct {
		name, url, token, code string
		status                 int
	}{
		{"private, outsider", v1 + private.RoomID.String(), bob.AccessToken, "M_NOT_FOUND", 404},
		{"private, unauthenticated", v1 + private.RoomID.String(), "", "M_NOT_FOUND", 404},
		{"unknown room", v1 + "!nope:localhost", bob.AccessToken, "M_NOT_FOUND", 404},
		{"unknown alias", v1 + url.PathEscape("#nope:localhost"), bob.AccessToken, "M_NOT_FOUND", 404},
		{"not an ID", v1 + "nope", bob.AccessToken, "M_INVALID_PARAM", 400},
	}
	for _, c := range cases {
		if r := rawRequest(t, "GET", c.url, c.token, ""); r.status != c.status || r.body["errcode"] != c.code {
			t.Errorf("%s: %d %v", c.name, r.status, r.body)
		}
	}
}

func TestMutualRooms(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	var shared []string
	for range 3 {
		room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"}))
		must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, room.RoomID))
		shared = append(shared, room.RoomID.String())
	}
	must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})) // alice's alone
	base := srv.URL + "/_matrix/client/v1/mutual_rooms?user_id="
	r := rawRequest(t, "GET", base+url.QueryEscape(bob.UserID.String()), alice.AccessToken, "")
	joined, _ := r.body["joined"].([]any)
	if r.status != 200 || len(joined) != 3 || r.body["count"] != float64(3) || r.body["next_batch"] != nil {
		t.Fatalf("mutual rooms: %d %v", r.status, r.body)
	}
	for _, room := range joined {
		if !slices.Contains(shared, room.(string)) {
			t.Errorf("mutual rooms lists %v, not one of %v", room, shared)
		}
	}
	cases := []struct {
		name, url, token, code string
		status                 int
	}{
		{"no user_id", base, alice.AccessToken, "M_INVALID_PARAM", 400},
		{"oneself", base + url.QueryEscape(alice.UserID.String()), alice.AccessToken, "M_INVALID_PARAM", 400},
		{"not a user ID", base + "bob", alice.AccessToken, "M_INVALID_PARAM", 400},
		{"bad token", base + url.QueryEscape(bob.UserID.String()) + "&from=!!", alice.AccessToken, "M_INVALID_PARAM", 400},
		{"no access token", base + url.QueryEscape(bob.UserID.String()), "", "M_MISSING_TOKEN", 401},
	}
	for _, c := range cases {
		if r := rawRequest(t, "GET", c.url, c.token, ""); r.status != c.status || r.body["errcode"] != c.code {
			t.Errorf("%s: %d %v", c.name, r.status, r.body)
		}
	}
}

func TestReportUser(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	base := srv.URL + "/_matrix/client/v3/users/"
	if r := rawRequest(t, "POST", base+bob.UserID.String()+"/report", alice.AccessToken, `{"reason":"spam"}`); r.status != 200 {
		t.Fatalf("report: %d %v", r.status, r.body)
	}
	if r := rawRequest(t, "POST", base+bob.UserID.String()+"/report", alice.AccessToken, `{"reason":""}`); r.status != 200 {
		t.Fatalf("blank reason: %d %v", r.status, r.body)
	}
	cases := []struct {
		name, url, body, code string
		status                int
	}{
		{"unknown user", base + "@nobody:localhost/report", `{"reason":"x"}`, "M_NOT_FOUND", 404},
		{"no reason", base + bob.UserID.String() + "/report", `{}`, "M_MISSING_PARAM", 400},
		{"reason not a string", base + bob.UserID.String() + "/report", `{"reason":1}`, "M_BAD_JSON", 400},
		{"not a user ID", base + "bob/report", `{"reason":"x"}`, "M_INVALID_PARAM", 400},
	}
	for _, c := range cases {
		if r := rawRequest(t, "POST", c.url, alice.AccessToken, c.body); r.status != c.status || r.body["errcode"] != c.code {
			t.Errorf("%s: %d %v", c.name, r.status, r.body)
		}
	}
}

func TestOpenIDToken(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	resp := must[*mautrix.RespOpenIDToken](t)(alice.RequestOpenIDToken(ctxT(t)))
	if resp.AccessToken == "" || resp.TokenType != "Bearer" || resp.MatrixServerName != "localhost" || resp.ExpiresIn != 3600 {
		t.Fatalf("token = %+v", resp)
	}
	url := srv.URL + "/_matrix/client/v3/user/" + alice.UserID.String() + "/openid/request_token"
	if r := rawRequest(t, "POST", url, bob.AccessToken, `{}`); r.status != 403 || r.body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("another user's: %d %v", r.status, r.body)
	}
	if r := rawRequest(t, "POST", url, alice.AccessToken, `[]`); r.status != 400 || r.body["errcode"] != "M_NOT_JSON" {
		t.Fatalf("bad body: %d %v", r.status, r.body)
	}
}
