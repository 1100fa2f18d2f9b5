package tests

import (
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// timelineHas says whether the room's timeline holds a member event of
// the given membership for stateKey.
func (r *ssRoom) timelineHas(typ, stateKey, membership string) bool {
	for _, ev := range r.Timeline {
		if ev.Type == typ && ev.StateKey != nil && *ev.StateKey == stateKey && contentMembershipOf(ev) == membership {
			return true
		}
	}
	return false
}

func contentMembershipOf(ev ssEvent) string {
	var c struct {
		Membership string `json:"membership"`
	}
	_ = json.Unmarshal(ev.Content, &c)
	return c.Membership
}

// A room the user is kicked or banned from while Element X's list has it
// is sent once with its new membership and the event that ended it, then
// dropped from the list; a new connection does not list it.
func TestSlidingKickAndBanToldOnce(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	kickRoom, _ := sharedRoom(t, bob, alice)
	banRoom, _ := sharedRoom(t, bob, alice)
	body := elementXBody([][2]int{{0, 19}}, nil)

	first := mustSliding(t, alice, "", -1, body)
	if first.Lists["all_rooms"].Count != 2 || first.Rooms[string(kickRoom)] == nil || first.Rooms[string(banRoom)] == nil {
		t.Fatalf("first response: count %d, rooms %v", first.Lists["all_rooms"].Count, keys(first.Rooms))
	}

	must[*mautrix.RespKickUser](t)(bob.KickUser(ctx, kickRoom, &mautrix.ReqKickUser{UserID: alice.UserID, Reason: "dehors"}))
	second := mustSliding(t, alice, first.Pos, 0, body)
	r := second.Rooms[string(kickRoom)]
	if r == nil || r.Membership != "leave" || !r.timelineHas("m.room.member", alice.UserID.String(), "leave") {
		t.Fatalf("after the kick: %+v", r)
	}
	if r.Timeline[len(r.Timeline)-1].Sender != bob.UserID.String() {
		t.Fatalf("the kick's sender: %+v", r.Timeline[len(r.Timeline)-1])
	}
	if second.Lists["all_rooms"].Count != 2 {
		t.Fatalf("the kicked room is told in the list: count %d", second.Lists["all_rooms"].Count)
	}

	must[*mautrix.RespBanUser](t)(bob.BanUser(ctx, banRoom, &mautrix.ReqBanUser{UserID: alice.UserID, Reason: "banni"}))
	third := mustSliding(t, alice, second.Pos, 0, body)
	if third.Rooms[string(kickRoom)] != nil {
		t.Fatalf("the kick is told again: %+v", third.Rooms[string(kickRoom)])
	}
	r = third.Rooms[string(banRoom)]
	if r == nil || r.Membership != "ban" || !r.timelineHas("m.room.member", alice.UserID.String(), "ban") {
		t.Fatalf("after the ban: %+v", r)
	}
	if third.Lists["all_rooms"].Count != 1 {
		t.Fatalf("after the ban: count %d, want 1 (the banned room, the kicked one dropped)", third.Lists["all_rooms"].Count)
	}

	// Something new in the room she was kicked from: not hers any more.
	must[*mautrix.RespSendEvent](t)(bob.SendText(ctx, kickRoom, "sans elle"))
	fourth := mustSliding(t, alice, third.Pos, 0, body)
	if fourth.Lists["all_rooms"].Count != 0 || len(fourth.Rooms) != 0 {
		t.Fatalf("rooms left still listed: count %d, rooms %v", fourth.Lists["all_rooms"].Count, keys(fourth.Rooms))
	}
	other := elementXBody([][2]int{{0, 19}}, nil)
	other["conn_id"] = "another"
	fresh := mustSliding(t, alice, "", -1, other)
	if fresh.Lists["all_rooms"].Count != 0 || len(fresh.Rooms) != 0 {
		t.Fatalf("a new connection lists rooms left before it: count %d, rooms %v", fresh.Lists["all_rooms"].Count, keys(fresh.Rooms))
	}

	// Invited back into the room she was kicked from and joined: the room
	// comes back from its start.
	must[*mautrix.RespInviteUser](t)(bob.InviteUser(ctx, kickRoom, &mautrix.ReqInviteUser{UserID: alice.UserID}))
	must[*mautrix.RespJoinRoom](t)(alice.JoinRoomByID(ctx, kickRoom))
	back := mustSliding(t, alice, fourth.Pos, 0, body)
	r = back.Rooms[string(kickRoom)]
	if r == nil || r.Membership != "join" || !r.Initial || !r.hasState("m.room.create", "") {
		t.Fatalf("back in the room: %+v", r)
	}
}

// An invite the user rejects is told once as left, with only the event
// that ended it: the room's history was never hers to see.
func TestSlidingRejectedInviteToldOnce(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	room := must[*mautrix.RespCreateRoom](t)(bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "Secret", Invite: []id.UserID{alice.UserID}}))
	body := elementXBody([][2]int{{0, 19}}, nil)
	first := mustSliding(t, alice, "", -1, body)
	if r := first.Rooms[string(room.RoomID)]; r == nil || r.Membership != "invite" {
		t.Fatalf("invite: %+v", r)
	}
	must[*mautrix.RespSendEvent](t)(bob.SendText(ctx, room.RoomID, "pas pour toi"))
	must[*mautrix.RespLeaveRoom](t)(alice.LeaveRoom(ctx, room.RoomID))
	second := mustSliding(t, alice, first.Pos, 0, body)
	r := second.Rooms[string(room.RoomID)]
	if r == nil || r.Membership != "leave" || len(r.Timeline) != 1 || !r.timelineHas("m.room.member", alice.UserID.String(), "leave") {
		t.Fatalf("after rejecting: %+v", r)
	}
	if len(r.RequiredState) != 0 {
		t.Fatalf("state of a room never joined: %+v", r.RequiredState)
	}
	third := mustSliding(t, alice, second.Pos, 0, body)
	if third.Lists["all_rooms"].Count != 0 || len(third.Rooms) != 0 {
		t.Fatalf("rejected invite still listed: count %d, rooms %v", third.Lists["all_rooms"].Count, keys(third.Rooms))
	}
}
