package roomserver

import (
	"encoding/json"
	"fmt"
	"testing"
)

// State is stored as deltas with a full copy every fullSnapshotEvery
// changes: 500 state changes must cost far less than 500 copies of the
// state, message events add no snapshot, and reading any state walks a
// bounded chain.
func TestSnapshotsStayBounded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice := user("alice")
		roomID := env.createRoom(CreateRoomRequest{Sender: alice})
		countRows := func() int {
			var n int
			if err := env.db.QueryRowContext(env.ctx, `SELECT COUNT(*) FROM rs_state_snapshots`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		rowsBefore := countRows()
		for i := range 20 {
			env.mustSend(alice, roomID, "m.room.message", map[string]any{"body": i})
		}
		if countRows() != rowsBefore {
			t.Fatal("message events created snapshot rows")
		}
		const changes = 500
		for i := range changes {
			if _, err := env.sendState(alice, roomID, "org.example.key", fmt.Sprint(i), map[string]any{"i": i}); err != nil {
				t.Fatal(err)
			}
		}
		rows, err := env.db.QueryContext(env.ctx, `SELECT chain_len, entries FROM rs_state_snapshots`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		stored, maxChain := 0, 0
		for rows.Next() {
			var chain int
			var enc string
			if err := rows.Scan(&chain, &enc); err != nil {
				t.Fatal(err)
			}
			var entries []snapshotEntry
			if err := json.Unmarshal([]byte(enc), &entries); err != nil {
				t.Fatal(err)
			}
			stored += len(entries)
			maxChain = max(maxChain, chain)
		}
		// Full copies would store sum(base+1 .. base+500) entries.
		base := 6
		fullCopies := changes*base + changes*(changes+1)/2
		if stored*10 > fullCopies {
			t.Fatalf("%d snapshot entries stored, more than a tenth of %d full copies", stored, fullCopies)
		}
		if maxChain >= fullSnapshotEvery {
			t.Fatalf("a delta chain reached %d rows", maxChain)
		}
		state := env.state(alice, roomID)
		for i := range changes {
			if _, ok := state["org.example.key|"+fmt.Sprint(i)]; !ok {
				t.Fatalf("state key %d missing from the rebuilt state", i)
			}
		}
		t.Logf("%d state changes: %d snapshot entries stored (full copies: %d), longest chain %d", changes, stored, fullCopies, maxChain)
	})
}

func TestQueryVisibility(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, bob, eve := user("alice"), user("bob"), user("eve")
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic, Topic: "before"})
		env.mustMember(bob, roomID, bob, MembershipJoin)
		seen := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "bob sees this"})
		env.mustMember(bob, roomID, bob, MembershipLeave)
		if _, err := env.sendState(alice, roomID, "m.room.topic", "", map[string]string{"topic": "after"}); err != nil {
			t.Fatal(err)
		}
		unseen := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "bob left"})

		// A member sees the current state; a former member the state when
		// they left; others nothing.
		if got := decode(t, env.state(alice, roomID)["m.room.topic|"].Content)["topic"]; got != "after" {
			t.Fatalf("alice sees topic %v", got)
		}
		if got := decode(t, env.state(bob, roomID)["m.room.topic|"].Content)["topic"]; got != "before" {
			t.Fatalf("bob, who left, sees topic %v", got)
		}
		_, err := QueryState.Call(env.ctx, env.bus, &QueryStateRequest{UserID: eve, RoomID: roomID})
		wantCode(t, err, "M_FORBIDDEN")
		_, err = QueryState.Call(env.ctx, env.bus, &QueryStateRequest{UserID: alice, RoomID: "!nope:" + testServer})
		wantCode(t, err, "M_FORBIDDEN")

		// One state event.
		empty := ""
		one, err := QueryState.Call(env.ctx, env.bus, &QueryStateRequest{UserID: alice, RoomID: roomID, Type: "m.room.topic", StateKey: &empty})
		if err != nil || len(one.Events) != 1 || one.Events[0].Type != "m.room.topic" {
			t.Fatalf("one state event: %+v %v", one, err)
		}
		_, err = QueryState.Call(env.ctx, env.bus, &QueryStateRequest{UserID: alice, RoomID: roomID, Type: "m.room.name"})
		wantCode(t, err, "M_NOT_FOUND")

		// Events follow history visibility (shared).
		if _, err := QueryEvent.Call(env.ctx, env.bus, &QueryEventRequest{UserID: bob, RoomID: roomID, EventID: seen}); err != nil {
			t.Fatalf("bob cannot read an event from while he was joined: %v", err)
		}
		_, err = QueryEvent.Call(env.ctx, env.bus, &QueryEventRequest{UserID: bob, RoomID: roomID, EventID: unseen})
		wantCode(t, err, "M_NOT_FOUND")
		_, err = QueryEvent.Call(env.ctx, env.bus, &QueryEventRequest{UserID: eve, RoomID: roomID, EventID: seen})
		wantCode(t, err, "M_NOT_FOUND")
		// Shared history: joining later shows earlier events.
		env.mustMember(eve, roomID, eve, MembershipJoin)
		if _, err := QueryEvent.Call(env.ctx, env.bus, &QueryEventRequest{UserID: eve, RoomID: roomID, EventID: seen}); err != nil {
			t.Fatalf("shared history hidden from a new member: %v", err)
		}

		// World-readable rooms are readable by anyone.
		open := env.createRoom(CreateRoomRequest{Sender: alice, InitialState: []StateEvent{
			{Type: "m.room.history_visibility", Content: json.RawMessage(`{"history_visibility":"world_readable"}`)},
		}})
		msg := env.mustSend(alice, open, "m.room.message", map[string]string{"body": "public"})
		if state := env.state(user("anyone"), open); len(state) == 0 {
			t.Fatal("world-readable state hidden")
		}
		if _, err := QueryEvent.Call(env.ctx, env.bus, &QueryEventRequest{UserID: user("anyone"), RoomID: open, EventID: msg}); err != nil {
			t.Fatalf("world-readable event hidden: %v", err)
		}
	})
}
