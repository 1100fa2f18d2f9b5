package roomserver

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCreateRoomEveryVersion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice := user("alice")
		for _, v := range versions() {
			t.Run("v"+v, func(t *testing.T) {
				roomID := env.createRoom(CreateRoomRequest{
					Sender: alice, SenderDisplayName: "Alice", RoomVersion: v,
					Name: "Room " + v, Topic: "About " + v, RoomAliasName: "room" + v, Preset: presetPublic,
				})
				state := env.state(alice, roomID)
				create := state["m.room.create|"]
				content := decode(t, create.Content)
				if content["room_version"] != v {
					t.Fatalf("room_version %v, want %s", content["room_version"], v)
				}
				_, hasCreator := content["creator"]
				if wantCreator := v != "11" && v != "12"; hasCreator != wantCreator {
					t.Fatalf("creator key present=%v, want %v", hasCreator, wantCreator)
				}
				pl := decode(t, state["m.room.power_levels|"].Content)
				users := pl["users"].(map[string]any)
				tombstone := pl["events"].(map[string]any)["m.room.tombstone"]
				if v == "12" {
					if len(users) != 0 {
						t.Fatalf("v12 power levels list users %v; creators must not be listed", users)
					}
					if tombstone != float64(150) {
						t.Fatalf("v12 tombstone level %v, want 150", tombstone)
					}
					if want := "!" + strings.TrimPrefix(create.EventID, "$"); roomID != want {
						t.Fatalf("v12 room ID %s, want %s (from the create event)", roomID, want)
					}
					if _, ok := env.rawEvent(create.EventID)["room_id"]; ok {
						t.Fatalf("v12 create event has a room_id")
					}
				} else {
					if users[alice] != float64(100) {
						t.Fatalf("creator level %v, want 100", users[alice])
					}
					if !strings.HasSuffix(roomID, ":"+testServer) {
						t.Fatalf("room ID %s lacks the server name", roomID)
					}
				}
				if create.RoomID != roomID {
					t.Fatalf("create event room_id %q in client format, want %s", create.RoomID, roomID)
				}
				member := decode(t, state["m.room.member|"+alice].Content)
				if member["membership"] != "join" || member["displayname"] != "Alice" {
					t.Fatalf("creator member content %v", member)
				}
				if decode(t, state["m.room.join_rules|"].Content)["join_rule"] != "public" {
					t.Fatal("public_chat room is not public")
				}
				if decode(t, state["m.room.canonical_alias|"].Content)["alias"] != "#room"+v+":"+testServer {
					t.Fatal("canonical alias missing")
				}
				if decode(t, state["m.room.topic|"].Content)["topic"] != "About "+v {
					t.Fatal("topic missing")
				}
				resolved, err := ResolveAlias.Call(env.ctx, env.bus, &ResolveAliasRequest{Alias: "#room" + v + ":" + testServer})
				if err != nil || resolved.RoomID != roomID {
					t.Fatalf("resolve alias: %v %v", resolved, err)
				}
			})
		}
	})
}

func TestCreateRoomOptions(t *testing.T) {
	forEachBackend(t, testCreateRoomOptions)
}

func testCreateRoomOptions(t *testing.T, env *testEnv) {
	alice, bob := user("alice"), user("bob")

	t.Run("visibility public means public_chat", func(t *testing.T) {
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Visibility: "public"})
		state := env.state(alice, roomID)
		if decode(t, state["m.room.join_rules|"].Content)["join_rule"] != "public" {
			t.Fatal("join rule is not public")
		}
		if decode(t, state["m.room.guest_access|"].Content)["guest_access"] != "forbidden" {
			t.Fatal("guest access is not forbidden")
		}
	})
	t.Run("private by default", func(t *testing.T) {
		state := env.state(alice, env.createRoom(CreateRoomRequest{Sender: alice}))
		if decode(t, state["m.room.join_rules|"].Content)["join_rule"] != "invite" {
			t.Fatal("join rule is not invite")
		}
	})
	t.Run("initial_state overrides the preset", func(t *testing.T) {
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, InitialState: []StateEvent{
			{Type: "m.room.history_visibility", Content: json.RawMessage(`{"history_visibility":"world_readable"}`)},
			{Type: "m.room.encryption", Content: json.RawMessage(`{"algorithm":"m.megolm.v1.aes-sha2"}`)},
		}})
		state := env.state(alice, roomID)
		if decode(t, state["m.room.history_visibility|"].Content)["history_visibility"] != "world_readable" {
			t.Fatal("initial_state did not override the preset")
		}
		if _, ok := state["m.room.encryption|"]; !ok {
			t.Fatal("encryption missing")
		}
		if state["m.room.history_visibility|"].Unsigned != nil {
			t.Fatal("the preset's history visibility was sent and then replaced")
		}
	})
	t.Run("trusted_private_chat v11 gives invitees 100", func(t *testing.T) {
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: "11", Preset: presetTrustedPrivate, Invite: []string{bob}, IsDirect: true})
		state := env.state(alice, roomID)
		users := decode(t, state["m.room.power_levels|"].Content)["users"].(map[string]any)
		if users[bob] != float64(100) {
			t.Fatalf("invitee level %v", users[bob])
		}
		invite := decode(t, state["m.room.member|"+bob].Content)
		if invite["membership"] != "invite" || invite["is_direct"] != true {
			t.Fatalf("invite content %v", invite)
		}
	})
	t.Run("trusted_private_chat v12 makes invitees creators", func(t *testing.T) {
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: "12", Preset: presetTrustedPrivate, Invite: []string{bob}})
		state := env.state(alice, roomID)
		creators := decode(t, state["m.room.create|"].Content)["additional_creators"]
		if list, ok := creators.([]any); !ok || len(list) != 1 || list[0] != bob {
			t.Fatalf("additional_creators %v", creators)
		}
		// bob, a creator, may then change anything once joined.
		env.mustMember(bob, roomID, bob, MembershipJoin)
		if _, err := env.sendState(bob, roomID, "m.room.name", "", map[string]string{"name": "bob's"}); err != nil {
			t.Fatalf("additional creator cannot set the name: %v", err)
		}
	})
	t.Run("power_level_content_override", func(t *testing.T) {
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, PowerLevelContentOverride: json.RawMessage(`{"events_default":50}`)})
		pl := decode(t, env.state(alice, roomID)["m.room.power_levels|"].Content)
		if pl["events_default"] != float64(50) || pl["ban"] != float64(50) {
			t.Fatalf("override not merged: %v", pl)
		}
	})
}

func TestCreateRoomErrors(t *testing.T) {
	forEachBackend(t, testCreateRoomErrors)
}

func testCreateRoomErrors(t *testing.T, env *testEnv) {
	alice := user("alice")
	call := func(req CreateRoomRequest) error {
		_, err := CreateRoom.Call(env.ctx, env.bus, &req)
		return err
	}
	wantCode(t, call(CreateRoomRequest{Sender: alice, RoomVersion: "13"}), "M_UNSUPPORTED_ROOM_VERSION")
	wantCode(t, call(CreateRoomRequest{Sender: alice, RoomVersion: "org.matrix.msc4014"}), "M_UNSUPPORTED_ROOM_VERSION")
	wantCode(t, call(CreateRoomRequest{Sender: alice, RoomAliasName: "a b"}), "M_INVALID_PARAM")
	wantCode(t, call(CreateRoomRequest{Sender: alice, RoomAliasName: "a:b"}), "M_INVALID_PARAM")
	wantCode(t, call(CreateRoomRequest{Sender: alice, CreationContent: json.RawMessage(`[1]`)}), "M_BAD_JSON")
	wantCode(t, call(CreateRoomRequest{Sender: alice, PowerLevelContentOverride: json.RawMessage(`"x"`)}), "M_BAD_JSON")
	wantCode(t, call(CreateRoomRequest{Sender: alice, InitialState: []StateEvent{{Type: "m.room.name", Content: json.RawMessage(`"x"`)}}}), "M_BAD_JSON")
	wantCode(t, call(CreateRoomRequest{Sender: alice, Preset: "party"}), "M_INVALID_PARAM")
	wantCode(t, call(CreateRoomRequest{Sender: alice, Invite: []string{"bob"}}), "M_INVALID_PARAM")
	// Room version 12 creators may not be listed in power levels.
	wantCode(t, call(CreateRoomRequest{Sender: alice, RoomVersion: "12",
		PowerLevelContentOverride: json.RawMessage(`{"users":{"` + alice + `":100}}`)}), "M_INVALID_ROOM_STATE")

	env.createRoom(CreateRoomRequest{Sender: alice, RoomAliasName: "taken"})
	wantCode(t, call(CreateRoomRequest{Sender: alice, RoomAliasName: "taken"}), "M_ROOM_IN_USE")
	var n int
	if err := env.db.QueryRowContext(env.ctx, `SELECT COUNT(*) FROM rs_rooms`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("failed creations left rooms behind: %d rooms (%v)", n, err)
	}
}

// Identical version-12 rooms created by one user at once get distinct IDs
// (the ID is the create event's hash, which includes its millisecond).
func TestCreateIdenticalRoomsAtOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		const n = 48
		ids := make(chan string, n)
		errs := make(chan error, n)
		for range n {
			go func() {
				resp, err := CreateRoom.Call(env.ctx, env.bus, &CreateRoomRequest{Sender: "@alice:test", RoomVersion: "12"})
				if err != nil {
					errs <- err
					return
				}
				ids <- resp.RoomID
			}()
		}
		seen := map[string]bool{}
		for range n {
			select {
			case err := <-errs:
				t.Fatal(err)
			case id := <-ids:
				if seen[id] {
					t.Fatalf("room ID %s given twice", id)
				}
				seen[id] = true
			}
		}
	})
}
