package tests

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// joined_rooms, joined_members, members (at, membership, not_membership),
// forget, knock and restricted joins.
func TestRoomMembers(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.New(t)
	alice, bob, carol := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob"), srv.RegisterUser(t, "carol")
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})).RoomID
	must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, room))
	must[*mautrix.RespInviteUser](t)(alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: carol.UserID}))

	joined := must[*mautrix.RespJoinedRooms](t)(bob.JoinedRooms(ctx))
	if len(joined.JoinedRooms) != 1 || joined.JoinedRooms[0] != room {
		t.Fatalf("joined rooms %v", joined.JoinedRooms)
	}
	jm := must[*mautrix.RespJoinedMembers](t)(bob.JoinedMembers(ctx, room))
	if len(jm.Joined) != 2 {
		t.Fatalf("joined members %v", jm.Joined)
	}
	_, err := carol.JoinedMembers(ctx, room)
	wantErr(t, err, "M_FORBIDDEN", 403)

	all := must[*mautrix.RespMembers](t)(bob.Members(ctx, room))
	if len(all.Chunk) != 3 {
		t.Fatalf("%d members, want 3", len(all.Chunk))
	}
	invited := must[*mautrix.RespMembers](t)(bob.Members(ctx, room, mautrix.ReqMembers{Membership: event.MembershipInvite}))
	if len(invited.Chunk) != 1 || invited.Chunk[0].GetStateKey() != carol.UserID.String() {
		t.Fatalf("invited %+v", invited.Chunk)
	}
	notJoined := must[*mautrix.RespMembers](t)(bob.Members(ctx, room, mautrix.ReqMembers{NotMembership: event.MembershipJoin}))
	if len(notJoined.Chunk) != 1 {
		t.Fatalf("not joined %+v", notJoined.Chunk)
	}
	// at: a sync token from before carol's invite.
	sync := must[*mautrix.RespSync](t)(bob.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline))
	must[*mautrix.RespKickUser](t)(alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: carol.UserID}))
	at := must[*mautrix.RespMembers](t)(bob.Members(ctx, room, mautrix.ReqMembers{At: sync.NextBatch, Membership: event.MembershipInvite}))
	if len(at.Chunk) != 1 {
		t.Fatalf("members at %s: %+v", sync.NextBatch, at.Chunk)
	}
	_, err = carol.Members(ctx, room)
	wantErr(t, err, "M_FORBIDDEN", 403)
	if r := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/rooms/"+string(room)+"/members?membership=dancing", bob.AccessToken, ""); r.body["errcode"] != "M_INVALID_PARAM" {
		t.Fatalf("bad membership filter: %+v", r)
	}

	// Forget: only after leaving.
	_, err = bob.ForgetRoom(ctx, room)
	wantErr(t, err, "M_UNKNOWN", 400)
	must[*mautrix.RespLeaveRoom](t)(bob.LeaveRoom(ctx, room))
	must[*mautrix.RespForgetRoom](t)(bob.ForgetRoom(ctx, room))
	_, err = bob.ForgetRoom(ctx, "!unknown:localhost")
	wantErr(t, err, "M_NOT_FOUND", 404)

	// Knock on a knock room, then be let in.
	knockRoom := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{"join_rule": "knock"}}}},
	})).RoomID
	must[*mautrix.RespKnockRoom](t)(carol.KnockRoom(ctx, string(knockRoom), &mautrix.ReqKnockRoom{Reason: "let me in"}))
	knocking := must[*mautrix.RespMembers](t)(alice.Members(ctx, knockRoom, mautrix.ReqMembers{Membership: event.MembershipKnock}))
	if len(knocking.Chunk) != 1 || knocking.Chunk[0].Content.AsMember().Reason != "let me in" {
		t.Fatalf("knocks %+v", knocking.Chunk)
	}
	_, err = carol.KnockRoom(ctx, string(room), nil) // a public room takes joins, not knocks
	wantErr(t, err, "M_FORBIDDEN", 403)
	_, err = carol.KnockRoom(ctx, "#nope:localhost", nil)
	wantErr(t, err, "M_NOT_FOUND", 404)
	_, err = carol.KnockRoom(ctx, "garbage", nil)
	wantErr(t, err, "M_INVALID_PARAM", 400)

	// A restricted room lets in members of the allowed room only.
	restricted := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{
			"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": knockRoom}},
		}}}},
	})).RoomID
	_, err = carol.JoinRoomByID(ctx, restricted)
	wantErr(t, err, "M_FORBIDDEN", 403)
	must[*mautrix.RespInviteUser](t)(alice.InviteUser(ctx, knockRoom, &mautrix.ReqInviteUser{UserID: carol.UserID}))
	must[*mautrix.RespJoinRoom](t)(carol.JoinRoomByID(ctx, knockRoom))
	must[*mautrix.RespJoinRoom](t)(carol.JoinRoomByID(ctx, restricted))
}
