package tests

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

func TestChangePassword(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	phone := loginAgain(t, alice, "password-alice")
	url := srv.URL + "/_matrix/client/v3/account/password"

	if r := rawRequest(t, "POST", url, alice.AccessToken, `{}`); r.status != 400 || r.body["errcode"] != "M_MISSING_PARAM" {
		t.Fatalf("no new password: %+v", r)
	}
	wantUIA(t, rawRequest(t, "POST", url, alice.AccessToken,
		`{"new_password":"new-secret","auth":`+passwordAuth("", "alice", "wrong")+`}`), "M_FORBIDDEN", "m.login.password")

	// One shot, without a session first: allowed by the spec.
	ok := rawRequest(t, "POST", url, alice.AccessToken, `{"new_password":"new-secret","auth":`+passwordAuth("", "alice", "password-alice")+`}`)
	if ok.status != 200 {
		t.Fatalf("change password: %+v", ok)
	}
	// Other devices are logged out, the current one stays.
	_, err := phone.Whoami(ctx)
	wantErr(t, err, "M_UNKNOWN_TOKEN", 401)
	must[*mautrix.RespWhoami](t)(alice.Whoami(ctx))
	// The old password no longer works, the new one does.
	_, err = srv.Client(t).Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "password-alice"})
	wantErr(t, err, "M_FORBIDDEN", 403)
	tablet := loginAgain(t, alice, "new-secret")

	// logout_devices: false keeps the other sessions.
	ok = rawRequest(t, "POST", url, alice.AccessToken, `{"new_password":"third","logout_devices":false,"auth":`+passwordAuth("", "alice", "new-secret")+`}`)
	if ok.status != 200 {
		t.Fatalf("change password: %+v", ok)
	}
	must[*mautrix.RespWhoami](t)(tablet.Whoami(ctx))
}

func TestDeactivate(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	room := must[*mautrix.RespCreateRoom](t)(bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"}))
	must[*mautrix.RespJoinRoom](t)(alice.JoinRoomByID(ctx, room.RoomID))
	invited := must[*mautrix.RespCreateRoom](t)(bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{alice.UserID}}))
	must[any](t)(nil, alice.SetAvatarURL(ctx, id.ContentURI{Homeserver: "localhost", FileID: "abc"}))
	url := srv.URL + "/_matrix/client/v3/account/deactivate"

	wantUIA(t, rawRequest(t, "POST", url, alice.AccessToken, `{}`), "", "m.login.password")
	wantUIA(t, rawRequest(t, "POST", url, alice.AccessToken, `{"auth":`+passwordAuth("", "alice", "nope")+`}`), "M_FORBIDDEN", "m.login.password")
	ok := rawRequest(t, "POST", url, alice.AccessToken, `{"erase":true,"auth":`+passwordAuth("", "alice", "password-alice")+`}`)
	if ok.status != 200 || ok.body["id_server_unbind_result"] != "no-support" {
		t.Fatalf("deactivate: %+v", ok)
	}
	_, err := alice.Whoami(ctx)
	wantErr(t, err, "M_UNKNOWN_TOKEN", 401)
	_, err = srv.Client(t).Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "password-alice"})
	wantErr(t, err, "M_USER_DEACTIVATED", 403)

	// Alice left the room and declined the invitation.
	for _, roomID := range []id.RoomID{room.RoomID, invited.RoomID} {
		var member event.MemberEventContent
		must[any](t)(nil, bob.StateEvent(ctx, roomID, event.StateMember, alice.UserID.String(), &member))
		if member.Membership != event.MembershipLeave {
			t.Fatalf("alice's membership in %s = %s", roomID, member.Membership)
		}
	}
	// erase cleared the profile.
	p := must[*mautrix.RespUserProfile](t)(bob.GetProfile(ctx, alice.UserID))
	if !p.AvatarURL.IsEmpty() || p.DisplayName != "" {
		t.Fatalf("profile after erase = %+v", p)
	}
	if r := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/profile/"+alice.UserID.String()+"/avatar_url", bob.AccessToken, ""); r.status != 404 {
		t.Fatalf("avatar after erase = %+v", r)
	}
}

func TestThreepidsIsEmpty(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	r := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/account/3pid", alice.AccessToken, "")
	if list, ok := r.body["threepids"].([]any); r.status != 200 || !ok || len(list) != 0 {
		t.Fatalf("3pid: %+v", r)
	}
	// The 3PID flows are not served.
	r = rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/account/3pid/add", alice.AccessToken, `{}`)
	if r.body["errcode"] != "M_UNRECOGNIZED" {
		t.Fatalf("3pid/add: %+v", r)
	}
}
