package roomserver

import (
	"strings"
	"testing"
)

func TestMembership(t *testing.T) {
	forEachBackend(t, testMembership)
}

func testMembership(t *testing.T, env *testEnv) {
	alice, bob, carol := user("alice"), user("bob"), user("carol")
	for _, v := range []string{"1", "10", "12"} {
		t.Run("v"+v, func(t *testing.T) {
			private := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: v})
			public := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: v, Preset: presetPublic, RoomAliasName: "pub" + v})

			// Joins: public rooms (by alias too), private rooms need an invite.
			_, err := env.member(bob, private, bob, MembershipJoin)
			wantCode(t, err, "M_FORBIDDEN")
			resp, err := Membership.Call(env.ctx, env.bus, &MembershipRequest{
				Sender: bob, RoomID: "#pub" + v + ":" + testServer, Membership: MembershipJoin, DisplayName: "Bob",
			})
			if err != nil || resp.RoomID != public {
				t.Fatalf("join by alias: %v %v", resp, err)
			}
			again, err := Membership.Call(env.ctx, env.bus, &MembershipRequest{Sender: bob, RoomID: public, Membership: MembershipJoin, DisplayName: "Bob"})
			if err != nil || again.EventID != resp.EventID {
				t.Fatalf("repeated join: %v %v, want the existing event %s", again, err, resp.EventID)
			}
			renamed, err := Membership.Call(env.ctx, env.bus, &MembershipRequest{Sender: bob, RoomID: public, Membership: MembershipJoin, DisplayName: "Robert"})
			if err != nil || renamed.EventID == resp.EventID {
				t.Fatalf("join with a new profile: %v %v", renamed, err)
			}
			if name := decode(t, env.state(bob, public)["m.room.member|"+bob].Content)["displayname"]; name != "Robert" {
				t.Fatalf("displayname %v", name)
			}

			// Invites.
			_, err = env.member(bob, private, carol, MembershipInvite)
			wantCode(t, err, "M_FORBIDDEN") // bob is not in the room
			env.mustMember(alice, private, bob, MembershipInvite)
			env.mustMember(bob, private, bob, MembershipJoin)
			_, err = env.member(alice, private, bob, MembershipInvite)
			wantCode(t, err, "M_FORBIDDEN")
			if !strings.Contains(err.Error(), "already in the room") {
				t.Fatalf("unclear message: %v", err)
			}
			// Rejecting an invite is a leave.
			env.mustMember(alice, private, carol, MembershipInvite)
			env.mustMember(carol, private, carol, MembershipLeave)
			if m := decode(t, env.state(alice, private)["m.room.member|"+carol].Content)["membership"]; m != "leave" {
				t.Fatalf("carol's membership %v after rejecting", m)
			}
			_, err = env.member(carol, private, carol, MembershipLeave)
			if err != nil {
				t.Fatalf("leaving twice should be idempotent: %v", err)
			}

			// Kicks need the kick level; bob has 0.
			env.mustMember(carol, public, carol, MembershipJoin)
			_, err = env.member(bob, public, carol, MembershipLeave)
			wantCode(t, err, "M_FORBIDDEN")
			env.mustMember(alice, public, carol, MembershipLeave)
			_, err = env.member(alice, public, carol, MembershipLeave)
			wantCode(t, err, "M_FORBIDDEN") // not in the room any more

			// Bans: banned users cannot join or be invited; unban is a leave.
			env.mustMember(alice, public, carol, MembershipBan)
			_, err = env.member(carol, public, carol, MembershipJoin)
			wantCode(t, err, "M_FORBIDDEN")
			_, err = env.member(alice, public, carol, MembershipInvite)
			wantCode(t, err, "M_FORBIDDEN")
			_, err = env.member(bob, public, carol, MembershipLeave)
			wantCode(t, err, "M_FORBIDDEN") // bob cannot unban
			env.mustMember(alice, public, carol, MembershipLeave)
			env.mustMember(carol, public, carol, MembershipJoin)

			// Leaving.
			env.mustMember(bob, public, bob, MembershipLeave)
			_, err = env.send(bob, public, "m.room.message", map[string]string{"body": "hi"})
			wantCode(t, err, "M_FORBIDDEN")
		})
	}

	t.Run("unknown and remote rooms", func(t *testing.T) {
		_, err := env.member(bob, "!nope:"+testServer, bob, MembershipJoin)
		wantCode(t, err, "M_NOT_FOUND")
		_, err = env.member(bob, "#nope:"+testServer, bob, MembershipJoin)
		wantCode(t, err, "M_NOT_FOUND")
		// No federation runs here (membership_remote_test.go has one).
		_, err = env.member(bob, "!room:elsewhere.org", bob, MembershipJoin)
		wantCode(t, err, "M_FORBIDDEN")
		if !strings.Contains(err.Error(), "federation is disabled") {
			t.Fatalf("remote room error: %v", err)
		}
		_, err = env.member(bob, "#room:elsewhere.org", bob, MembershipJoin)
		wantCode(t, err, "M_FORBIDDEN")
		_, err = env.member(bob, "nonsense", bob, MembershipJoin)
		wantCode(t, err, "M_INVALID_PARAM")
		_, err = env.member(bob, "!nope:"+testServer, bob, "dance")
		wantCode(t, err, "M_INVALID_PARAM")
	})
}

func TestRestrictedJoinAndKnock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, bob, carol := user("alice"), user("bob"), user("carol")
		for _, v := range []string{"10", "12"} {
			t.Run("v"+v, func(t *testing.T) {
				space := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: v, Invite: []string{bob}})
				env.mustMember(bob, space, bob, MembershipJoin)
				rule := `{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"` + space + `"}]}`
				roomID := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: v,
					InitialState: []StateEvent{{Type: "m.room.join_rules", Content: []byte(rule)}}})
				id := env.mustMember(bob, roomID, bob, MembershipJoin)
				if via := decode(t, env.state(bob, roomID)["m.room.member|"+bob].Content)["join_authorised_via_users_server"]; via != alice {
					t.Fatalf("restricted join authorised via %v, want %s (event %s)", via, alice, id)
				}
				_, err := env.member(carol, roomID, carol, MembershipJoin)
				wantCode(t, err, "M_FORBIDDEN")

				knockRoom := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: v,
					InitialState: []StateEvent{{Type: "m.room.join_rules", Content: []byte(`{"join_rule":"knock"}`)}}})
				env.mustMember(carol, knockRoom, carol, MembershipKnock)
				_, err = env.member(carol, knockRoom, carol, MembershipJoin)
				wantCode(t, err, "M_FORBIDDEN")
				env.mustMember(alice, knockRoom, carol, MembershipInvite)
				env.mustMember(carol, knockRoom, carol, MembershipJoin)
			})
		}
	})
}
