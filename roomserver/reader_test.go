package roomserver

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestEventReader(t *testing.T) {
	forEachBackend(t, testEventReader)
}

func testEventReader(t *testing.T, env *testEnv) {
	alice, bob, carol := user("alice"), user("bob"), user("carol")
	// The reader is used from another process: give it its own handle.
	r := NewEventReader(env.db)
	ctx := env.ctx

	start, err := r.MaxPos(ctx)
	if err != nil || start != 0 {
		t.Fatalf("empty MaxPos = %d, %v", start, err)
	}
	roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic, Topic: "first"})
	afterCreate, _ := r.MaxPos(ctx)
	env.mustMember(bob, roomID, bob, MembershipJoin)
	m1 := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "one"})
	topic2, err := env.sendState(alice, roomID, "m.room.topic", "", map[string]string{"topic": "second"})
	if err != nil {
		t.Fatal(err)
	}
	topicPos, _ := r.MaxPos(ctx)
	resp, err := SendEvent.Call(ctx, env.bus, &SendEventRequest{Sender: bob, DeviceID: "BOBDEV", TxnID: "tx", RoomID: roomID,
		Type: "m.room.message", Content: json.RawMessage(`{"body":"two"}`)})
	if err != nil {
		t.Fatal(err)
	}
	m2 := resp.EventID
	env.mustMember(alice, roomID, carol, MembershipInvite)
	end, _ := r.MaxPos(ctx)

	t.Run("Events forwards and backwards", func(t *testing.T) {
		all, err := r.Events(ctx, roomID, 0, end, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(all)) != end {
			t.Fatalf("%d events, want %d", len(all), end)
		}
		for i := 1; i < len(all); i++ {
			if all[i].Pos <= all[i-1].Pos {
				t.Fatal("positions not ascending")
			}
		}
		last2, err := r.Events(ctx, roomID, 0, end, 2, true)
		if err != nil || len(last2) != 2 || last2[0].Pos != end || last2[1].Pos != end-1 {
			t.Fatalf("backwards: %+v %v", last2, err)
		}
		window, _ := r.Events(ctx, roomID, afterCreate, topicPos, 10, false)
		ids := []string{}
		for _, ev := range window {
			ids = append(ids, ev.Event.EventID)
		}
		if len(ids) != 3 || ids[1] != m1 || ids[2] != topic2 {
			t.Fatalf("window (after create, topic] = %v", ids)
		}
		var sent StreamEvent
		for _, ev := range all {
			if ev.Event.EventID == m2 {
				sent = ev
			}
		}
		if sent.SenderDeviceID != "BOBDEV" || sent.TxnID != "tx" || string(sent.Event.Content) != `{"body":"two"}` {
			t.Fatalf("stored send %+v", sent)
		}
		for _, ev := range all {
			if ev.Event.EventID == topic2 {
				unsigned := decode(t, ev.Event.Unsigned)
				if unsigned["prev_content"].(map[string]any)["topic"] != "first" {
					t.Fatalf("prev_content missing: %v", unsigned)
				}
			}
		}
	})

	t.Run("state at and before a position", func(t *testing.T) {
		topicOf := func(evs []ClientEvent) string {
			for _, ev := range evs {
				if ev.Type == "m.room.topic" {
					return decode(t, ev.Content)["topic"].(string)
				}
			}
			return ""
		}
		at, err := r.StateAt(ctx, roomID, topicPos)
		if err != nil || topicOf(at) != "second" {
			t.Fatalf("state at the topic change: %q %v", topicOf(at), err)
		}
		before, err := r.StateBefore(ctx, roomID, topicPos)
		if err != nil || topicOf(before) != "first" {
			t.Fatalf("state before the topic change: %q %v", topicOf(before), err)
		}
		current, _ := r.StateAt(ctx, roomID, end+100)
		if topicOf(current) != "second" || len(current) != len(at)+1 { // + carol's invite
			t.Fatalf("current state: %d events", len(current))
		}
	})

	t.Run("selected state", func(t *testing.T) {
		// Only bob's member event, of the state before the topic change.
		var seen []string
		got, err := r.SelectState(ctx, roomID, StateSelection{Pos: topicPos, Before: true,
			Keep: func(typ, stateKey string, changed bool) bool {
				if !changed {
					t.Errorf("without Delta every entry is changed")
				}
				seen = append(seen, typ)
				return typ == "m.room.member" && stateKey == bob
			}})
		if err != nil || len(got) != 1 || *got[0].StateKey != bob {
			t.Fatalf("bob's member event: %+v %v", got, err)
		}
		before, _ := r.StateBefore(ctx, roomID, topicPos)
		if len(seen) != len(before) {
			t.Fatalf("Keep saw %d entries, the state has %d", len(seen), len(before))
		}
		// The delta from just after bob's join to now: the topic and
		// carol's invite.
		delta, err := r.SelectState(ctx, roomID, StateSelection{Pos: end, Delta: true, Since: afterCreate + 1})
		if err != nil {
			t.Fatal(err)
		}
		keys := []string{}
		for _, ev := range delta {
			keys = append(keys, ev.Type+"|"+*ev.StateKey)
		}
		if !slices.Equal(keys, []string{"m.room.member|" + carol, "m.room.topic|"}) {
			t.Fatalf("delta %v", keys)
		}
		all, err := r.SelectState(ctx, roomID, StateSelection{Pos: end})
		if current, _ := r.StateAt(ctx, roomID, end); err != nil || len(all) != len(current) {
			t.Fatalf("no Keep: %d events, StateAt %d (%v)", len(all), len(current), err)
		}
	})

	t.Run("rooms with events and room mates", func(t *testing.T) {
		rooms, err := r.RoomsWithEvents(ctx, afterCreate, end)
		if err != nil || !slices.Equal(rooms, []string{roomID}) {
			t.Fatalf("rooms with events %v %v", rooms, err)
		}
		if rooms, _ := r.RoomsWithEvents(ctx, end, end+10); len(rooms) != 0 {
			t.Fatalf("nothing after the end, got %v", rooms)
		}
		mates, err := r.RoomMates(ctx, bob)
		slices.Sort(mates)
		if err != nil || !slices.Equal(mates, []string{alice, bob}) {
			t.Fatalf("bob's room mates %v %v", mates, err)
		}
		if mates, _ := r.RoomMates(ctx, carol); len(mates) != 0 {
			t.Fatalf("carol is only invited, got %v", mates)
		}
	})

	t.Run("memberships", func(t *testing.T) {
		joined, err := r.JoinedUsers(ctx, roomID)
		if err != nil || !slices.Equal(joined, []string{alice, bob}) {
			t.Fatalf("joined users %v %v", joined, err)
		}
		rooms, err := r.RoomsOfUser(ctx, carol, MembershipInvite)
		if err != nil || len(rooms) != 1 || rooms[0].RoomID != roomID || rooms[0].Pos != end {
			t.Fatalf("carol's invites %+v %v", rooms, err)
		}
		if rooms, _ := r.RoomsOfUser(ctx, carol, MembershipJoin); len(rooms) != 0 {
			t.Fatalf("carol joined nothing, got %+v", rooms)
		}
		changes, err := r.MembershipChanges(ctx, bob, 0, end)
		if err != nil || len(changes) != 1 || changes[0].Membership != "join" {
			t.Fatalf("bob's changes %+v %v", changes, err)
		}
		if changes, _ := r.MembershipChanges(ctx, bob, changes[0].Pos, end); len(changes) != 0 {
			t.Fatalf("from is exclusive, got %+v", changes)
		}
		if m, _ := r.MembershipAt(ctx, roomID, bob, afterCreate); m != "" {
			t.Fatalf("bob's membership before joining: %q", m)
		}
		if m, _ := r.MembershipAt(ctx, roomID, bob, end); m != "join" {
			t.Fatalf("bob's membership now: %q", m)
		}
		invite, err := r.InviteState(ctx, roomID, carol)
		if err != nil {
			t.Fatal(err)
		}
		types := map[string]bool{}
		for _, raw := range invite {
			ev := decode(t, raw)
			types[ev["type"].(string)] = true
			if ev["type"] == "m.room.member" && ev["state_key"] != carol {
				t.Fatalf("invite state shows another member: %v", ev)
			}
		}
		for _, want := range []string{"m.room.create", "m.room.join_rules", "m.room.member", "m.room.topic"} {
			if !types[want] {
				t.Fatalf("invite state lacks %s: %v", want, types)
			}
		}
	})

	t.Run("unknown room", func(t *testing.T) {
		evs, err := r.Events(ctx, "!nope:x", 0, end, 10, false)
		if err != nil || len(evs) != 0 {
			t.Fatalf("%v %v", evs, err)
		}
	})
}
