package roomserver

import (
	"encoding/json"
	"testing"
)

func TestRoomFeatures(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		t.Run("aliases and directory", func(t *testing.T) { testAliasesAndDirectory(t, env) })
		t.Run("relations and aggregations", func(t *testing.T) { testRelations(t, env) })
		t.Run("upgrade", func(t *testing.T) { testUpgrade(t, env) })
		t.Run("forget and report", func(t *testing.T) { testForgetAndReport(t, env) })
	})
}

func testAliasesAndDirectory(t *testing.T, env *testEnv) {
	alice, bob := user("alice"), user("bob")
	roomID := env.createRoom(CreateRoomRequest{Sender: alice, Visibility: "public", Name: "Hall"})
	alias := "#hall:" + testServer
	if _, err := SetAlias.Call(env.ctx, env.bus, &SetAliasRequest{UserID: alice, Alias: alias, RoomID: roomID}); err != nil {
		t.Fatal(err)
	}
	_, err := SetAlias.Call(env.ctx, env.bus, &SetAliasRequest{UserID: alice, Alias: alias, RoomID: roomID})
	wantCode(t, err, "M_UNKNOWN")
	_, err = SetAlias.Call(env.ctx, env.bus, &SetAliasRequest{UserID: bob, Alias: "#other:" + testServer, RoomID: roomID})
	wantCode(t, err, "M_FORBIDDEN")
	_, err = SetAlias.Call(env.ctx, env.bus, &SetAliasRequest{UserID: alice, Alias: "#x:elsewhere", RoomID: roomID})
	wantCode(t, err, "M_INVALID_PARAM")
	env.mustMember(bob, roomID, bob, MembershipJoin)
	_, err = DeleteAlias.Call(env.ctx, env.bus, &DeleteAliasRequest{UserID: bob, Alias: alias})
	wantCode(t, err, "M_FORBIDDEN")

	pub, err := PublicRooms.Call(env.ctx, env.bus, &PublicRoomsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pub.Chunk) != 1 || pub.Chunk[0].Name != "Hall" || pub.Chunk[0].NumJoinedMembers != 2 || pub.Chunk[0].JoinRule != "public" {
		t.Fatalf("public rooms %+v", pub)
	}
	if _, err := DeleteAlias.Call(env.ctx, env.bus, &DeleteAliasRequest{UserID: alice, Alias: alias}); err != nil {
		t.Fatal(err)
	}
	_, err = DeleteAlias.Call(env.ctx, env.bus, &DeleteAliasRequest{UserID: alice, Alias: alias})
	wantCode(t, err, "M_NOT_FOUND")
}

func testRelations(t *testing.T, env *testEnv) {
	alice, bob := user("alice"), user("bob")
	roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic})
	env.mustMember(bob, roomID, bob, MembershipJoin)
	root := env.mustSend(alice, roomID, "m.room.message", map[string]any{"body": "root"})
	rel := func(relType string) map[string]any {
		return map[string]any{"rel_type": relType, "event_id": root}
	}
	env.mustSend(bob, roomID, "m.room.message", map[string]any{"body": "in thread", "m.relates_to": rel("m.thread")})
	reply2 := env.mustSend(bob, roomID, "m.room.message", map[string]any{"body": "again", "m.relates_to": rel("m.thread")})
	env.mustSend(bob, roomID, "m.room.message", map[string]any{"body": "* forged", "m.new_content": map[string]any{"body": "forged"}, "m.relates_to": rel("m.replace")})
	edit := env.mustSend(alice, roomID, "m.room.message", map[string]any{"body": "* edited", "m.new_content": map[string]any{"body": "edited"}, "m.relates_to": rel("m.replace")})
	ref := env.mustSend(bob, roomID, "m.room.message", map[string]any{"body": "see", "m.relates_to": rel("m.reference")})
	reaction := env.mustSend(bob, roomID, "m.reaction", map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": root, "key": "👍"}})

	ev, err := QueryEvent.Call(env.ctx, env.bus, &QueryEventRequest{UserID: bob, RoomID: roomID, EventID: root})
	if err != nil {
		t.Fatal(err)
	}
	var unsigned struct {
		Relations struct {
			Thread struct {
				Latest       ClientEvent `json:"latest_event"`
				Count        int         `json:"count"`
				Participated bool        `json:"current_user_participated"`
			} `json:"m.thread"`
			Replace   ClientEvent `json:"m.replace"`
			Reference struct {
				Chunk []map[string]string `json:"chunk"`
			} `json:"m.reference"`
		} `json:"m.relations"`
	}
	if err := json.Unmarshal(ev.Event.Unsigned, &unsigned); err != nil {
		t.Fatalf("unsigned %s: %v", ev.Event.Unsigned, err)
	}
	r := unsigned.Relations
	if r.Thread.Count != 2 || r.Thread.Latest.EventID != reply2 || !r.Thread.Participated {
		t.Errorf("thread aggregation %+v", r.Thread)
	}
	if r.Replace.EventID != edit {
		t.Errorf("edit aggregation %s, want %s (only the sender's edits count)", r.Replace.EventID, edit)
	}
	if len(r.Reference.Chunk) != 1 || r.Reference.Chunk[0]["event_id"] != ref {
		t.Errorf("reference aggregation %+v", r.Reference)
	}

	// The EventReader gives syncapi the same aggregations.
	end, _ := env.rs.reader.MaxPos(env.ctx)
	evs, err := NewEventReader(env.db).Events(env.ctx, roomID, 0, end, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, se := range evs {
		if se.Event.EventID == root && !json.Valid(se.Event.Unsigned) {
			t.Fatal("no unsigned on the root read by the EventReader")
		}
		if se.Event.EventID == root && len(decode(t, se.Event.Unsigned)["m.relations"].(map[string]any)) != 3 {
			t.Fatalf("reader aggregations %s", se.Event.Unsigned)
		}
	}

	all, err := QueryRelations.Call(env.ctx, env.bus, &QueryRelationsRequest{UserID: bob, RoomID: roomID, EventID: root, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Chunk) != 3 || all.Chunk[0].EventID != reaction || all.NextPos == 0 {
		t.Fatalf("first page of relations: %d events, next %d", len(all.Chunk), all.NextPos)
	}
	rest, err := QueryRelations.Call(env.ctx, env.bus, &QueryRelationsRequest{UserID: bob, RoomID: roomID, EventID: root, Limit: 10, From: all.NextPos})
	if err != nil || len(rest.Chunk) != 3 || rest.NextPos != 0 {
		t.Fatalf("second page: %+v %v", rest, err)
	}
	annotations, err := QueryRelations.Call(env.ctx, env.bus, &QueryRelationsRequest{UserID: bob, RoomID: roomID, EventID: root, RelType: "m.annotation", EventType: "m.reaction", Limit: 10})
	if err != nil || len(annotations.Chunk) != 1 || annotations.Chunk[0].EventID != reaction {
		t.Fatalf("annotations: %+v %v", annotations, err)
	}

	threads, err := QueryThreads.Call(env.ctx, env.bus, &QueryThreadsRequest{UserID: alice, RoomID: roomID, Limit: 10})
	if err != nil || len(threads.Chunk) != 1 || threads.Chunk[0].EventID != root {
		t.Fatalf("threads: %+v %v", threads, err)
	}

	// A redacted relation no longer counts.
	if _, err := SendEvent.Call(env.ctx, env.bus, &SendEventRequest{Sender: alice, RoomID: roomID, Type: "m.room.redaction", Content: json.RawMessage(`{}`), Redacts: ref}); err != nil {
		t.Fatal(err)
	}
	refs, _ := QueryRelations.Call(env.ctx, env.bus, &QueryRelationsRequest{UserID: bob, RoomID: roomID, EventID: root, RelType: "m.reference", Limit: 10})
	if len(refs.Chunk) != 0 {
		t.Fatalf("redacted reference still listed: %+v", refs.Chunk)
	}
}

func testUpgrade(t *testing.T, env *testEnv) {
	alice, bob := user("alice"), user("bob")
	roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic, Name: "Old", RoomVersion: "10", RoomAliasName: "upgraded"})
	env.mustMember(bob, roomID, bob, MembershipJoin)
	if _, err := env.sendState(alice, roomID, "im.vector.room.access_rules", "", map[string]string{"rule": "restricted"}); err != nil {
		t.Fatal(err)
	}
	_, err := UpgradeRoom.Call(env.ctx, env.bus, &UpgradeRoomRequest{Sender: bob, RoomID: roomID, NewVersion: "12"})
	wantCode(t, err, "M_FORBIDDEN")
	_, err = UpgradeRoom.Call(env.ctx, env.bus, &UpgradeRoomRequest{Sender: alice, RoomID: roomID, NewVersion: "99"})
	wantCode(t, err, "M_UNSUPPORTED_ROOM_VERSION")
	resp, err := UpgradeRoom.Call(env.ctx, env.bus, &UpgradeRoomRequest{Sender: alice, RoomID: roomID, NewVersion: "12"})
	if err != nil {
		t.Fatal(err)
	}
	newState := env.state(alice, resp.ReplacementRoom)
	if string(newState["m.room.name|"].Content) != `{"name":"Old"}` {
		t.Errorf("name not carried: %s", newState["m.room.name|"].Content)
	}
	if decode(t, newState["im.vector.room.access_rules|"].Content)["rule"] != "restricted" {
		t.Errorf("access rules not carried")
	}
	pred := decode(t, newState["m.room.create|"].Content)["predecessor"].(map[string]any)
	if pred["room_id"] != roomID {
		t.Errorf("predecessor %v", pred)
	}
	if decode(t, newState["m.room.canonical_alias|"].Content)["alias"] != "#upgraded:"+testServer {
		t.Errorf("canonical alias not moved")
	}
	target, _ := env.rs.reader.aliasRoom(env.ctx, "#upgraded:"+testServer)
	if target != resp.ReplacementRoom {
		t.Errorf("alias points to %s", target)
	}
	oldState := env.state(alice, roomID)
	if decode(t, oldState["m.room.tombstone|"].Content)["replacement_room"] != resp.ReplacementRoom {
		t.Errorf("no tombstone in the old room")
	}
	pl := decode(t, oldState["m.room.power_levels|"].Content)
	if pl["events_default"].(float64) < 50 || pl["invite"].(float64) < 50 {
		t.Errorf("old room not restricted: %v", pl)
	}
	if _, ok := decode(t, newState["m.room.power_levels|"].Content)["users"].(map[string]any)[alice]; ok {
		t.Errorf("a version 12 creator listed in users")
	}
}

func testForgetAndReport(t *testing.T, env *testEnv) {
	alice, bob := user("alice"), user("bob")
	roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic})
	env.mustMember(bob, roomID, bob, MembershipJoin)
	msg := env.mustSend(alice, roomID, "m.room.message", map[string]any{"body": "hi"})
	_, err := Forget.Call(env.ctx, env.bus, &RoomRequest{UserID: bob, RoomID: roomID})
	wantCode(t, err, "M_UNKNOWN")
	score := -100
	if _, err := Report.Call(env.ctx, env.bus, &ReportRequest{UserID: bob, RoomID: roomID, EventID: msg, Reason: "spam", Score: &score}); err != nil {
		t.Fatal(err)
	}
	_, err = Report.Call(env.ctx, env.bus, &ReportRequest{UserID: user("carol"), RoomID: roomID, EventID: msg})
	wantCode(t, err, "M_NOT_FOUND")
	_, err = Report.Call(env.ctx, env.bus, &ReportRequest{UserID: bob, RoomID: roomID, EventID: "$nope"})
	wantCode(t, err, "M_NOT_FOUND")
	env.mustMember(bob, roomID, bob, MembershipLeave)
	if _, err := Forget.Call(env.ctx, env.bus, &RoomRequest{UserID: bob, RoomID: roomID}); err != nil {
		t.Fatal(err)
	}
	forgotten, err := QueryForgotten.Call(env.ctx, env.bus, &QueryForgottenRequest{UserID: bob})
	if err != nil || len(forgotten.RoomIDs) != 1 {
		t.Fatalf("forgotten %+v %v", forgotten, err)
	}
	env.mustMember(bob, roomID, bob, MembershipJoin)
	forgotten, _ = QueryForgotten.Call(env.ctx, env.bus, &QueryForgottenRequest{UserID: bob})
	if len(forgotten.RoomIDs) != 0 {
		t.Fatalf("room still forgotten after rejoining")
	}
}
