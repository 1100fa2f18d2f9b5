package tests

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// Room upgrades, the space hierarchy and content reports.
func TestRoomUpgradeHierarchyReports(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.New(t)
	alice, bob, eve := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob"), srv.RegisterUser(t, "eve")

	t.Run("upgrade", func(t *testing.T) {
		room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
			Preset: "public_chat", Visibility: "public", Name: "Ministry", Topic: "news", RoomVersion: "10", RoomAliasName: "ministry",
			InitialState: []*event.Event{
				{Type: event.NewEventType("im.vector.room.access_rules"), Content: event.Content{Raw: map[string]any{"rule": "restricted"}}},
				{Type: event.StateEncryption, Content: event.Content{Raw: map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}},
			},
		})).RoomID
		must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, room))
		upgrade := func(cli *mautrix.Client, version string) (map[string]any, error) {
			var resp map[string]any
			_, err := cli.MakeRequest(ctx, "POST", cli.BuildClientURL("v3", "rooms", room, "upgrade"), map[string]string{"new_version": version}, &resp)
			return resp, err
		}
		_, err := upgrade(bob, "12")
		wantErr(t, err, "M_FORBIDDEN", 403)
		_, err = upgrade(alice, "99")
		wantErr(t, err, "M_UNSUPPORTED_ROOM_VERSION", 400)
		_, err = upgrade(eve, "12")
		wantErr(t, err, "M_FORBIDDEN", 403)
		resp, err := upgrade(alice, "12")
		if err != nil {
			t.Fatal(err)
		}
		newRoom := id.RoomID(resp["replacement_room"].(string))

		var name, rules, enc, create, tomb map[string]any
		for target, st := range map[*map[string]any]struct {
			room id.RoomID
			typ  event.Type
		}{
			&name: {newRoom, event.StateRoomName}, &rules: {newRoom, event.NewEventType("im.vector.room.access_rules")},
			&enc: {newRoom, event.StateEncryption}, &create: {newRoom, event.StateCreate}, &tomb: {room, event.StateTombstone},
		} {
			st.typ.Class = event.StateEventType
			if err := alice.StateEvent(ctx, st.room, st.typ, "", target); err != nil {
				t.Fatalf("%s: %v", st.typ.Type, err)
			}
		}
		if name["name"] != "Ministry" || rules["rule"] != "restricted" || enc["algorithm"] != "m.megolm.v1.aes-sha2" {
			t.Fatalf("state not carried: %v %v %v", name, rules, enc)
		}
		if create["room_version"] != "12" || create["predecessor"].(map[string]any)["room_id"] != string(room) {
			t.Fatalf("create %v", create)
		}
		if tomb["replacement_room"] != string(newRoom) {
			t.Fatalf("tombstone %v", tomb)
		}
		resolved := must[*mautrix.RespAliasResolve](t)(bob.ResolveAlias(ctx, "#ministry:localhost"))
		if resolved.RoomID != newRoom {
			t.Fatalf("alias still on %s", resolved.RoomID)
		}
		pub := must[*mautrix.RespPublicRooms](t)(bob.PublicRooms(ctx, nil))
		if len(pub.Chunk) != 1 || pub.Chunk[0].RoomID != newRoom {
			t.Fatalf("directory lists %+v", pub.Chunk)
		}
		// The old room no longer lets ordinary members speak.
		_, err = bob.SendText(ctx, room, "still here?")
		wantErr(t, err, "M_FORBIDDEN", 403)
	})

	t.Run("hierarchy", func(t *testing.T) {
		space := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
			Preset: "public_chat", Name: "Space", CreationContent: map[string]any{"type": "m.space"},
		})).RoomID
		child := func(name string, preset string, suggested bool) id.RoomID {
			r := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: preset, Name: name})).RoomID
			must[*mautrix.RespSendEvent](t)(alice.SendStateEvent(ctx, space, event.StateSpaceChild, r.String(),
				map[string]any{"via": []string{"localhost"}, "suggested": suggested}))
			return r
		}
		a := child("A", "public_chat", true)
		child("B", "public_chat", false)
		child("Secret", "private_chat", false)

		h := must[*mautrix.RespHierarchy](t)(bob.Hierarchy(ctx, space, &mautrix.ReqHierarchy{}))
		if len(h.Rooms) != 3 || h.Rooms[0].RoomID != space || len(h.Rooms[0].ChildrenState) != 3 || h.Rooms[0].RoomType != event.RoomTypeSpace {
			t.Fatalf("hierarchy %d rooms", len(h.Rooms))
		}
		suggested := must[*mautrix.RespHierarchy](t)(bob.Hierarchy(ctx, space, &mautrix.ReqHierarchy{SuggestedOnly: true}))
		if len(suggested.Rooms) != 2 || suggested.Rooms[1].RoomID != a {
			t.Fatalf("suggested %d rooms", len(suggested.Rooms))
		}
		zero := 0
		shallow := must[*mautrix.RespHierarchy](t)(bob.Hierarchy(ctx, space, &mautrix.ReqHierarchy{MaxDepth: &zero}))
		if len(shallow.Rooms) != 1 {
			t.Fatalf("max_depth 0: %d rooms", len(shallow.Rooms))
		}
		page := must[*mautrix.RespHierarchy](t)(bob.Hierarchy(ctx, space, &mautrix.ReqHierarchy{Limit: 2}))
		if len(page.Rooms) != 2 || page.NextBatch == "" {
			t.Fatalf("page 1: %d rooms, next %q", len(page.Rooms), page.NextBatch)
		}
		page = must[*mautrix.RespHierarchy](t)(bob.Hierarchy(ctx, space, &mautrix.ReqHierarchy{Limit: 2, From: page.NextBatch}))
		if len(page.Rooms) != 1 || page.NextBatch != "" {
			t.Fatalf("page 2: %d rooms", len(page.Rooms))
		}
		private := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})).RoomID
		_, err := bob.Hierarchy(ctx, private, &mautrix.ReqHierarchy{})
		wantErr(t, err, "M_FORBIDDEN", 403)
	})

	t.Run("reports", func(t *testing.T) {
		room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})).RoomID
		must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, room))
		msg := must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, room, "spam")).EventID
		if err := bob.ReportEvent(ctx, room, msg, "spam"); err != nil {
			t.Fatal(err)
		}
		if err := bob.ReportRoom(ctx, room, "a spam room"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, eve.ReportEvent(ctx, room, msg, "not in the room"), "M_NOT_FOUND", 404)
		wantErr(t, bob.ReportEvent(ctx, room, "$unknown", "x"), "M_NOT_FOUND", 404)
		wantErr(t, eve.ReportRoom(ctx, room, "x"), "M_NOT_FOUND", 404)
		wantErr(t, bob.ReportRoom(ctx, "!unknown:localhost", "x"), "M_NOT_FOUND", 404)
	})
}
