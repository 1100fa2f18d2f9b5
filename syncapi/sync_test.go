package syncapi

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

const roomA = "!a:test"

func TestInitialSyncShape(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Cellule de crise")
	h.messageFrom(roomA, alice, "ALICEDESK", "txn1", "one")
	last := h.message(roomA, alice, "two")
	h.createRoom("!other:test", carol, "Not Alice's")

	status, raw := h.get(aliceTok, "/_matrix/client/v3/sync", nil)
	if status != 200 {
		t.Fatalf("%d %s", status, raw)
	}
	// The shape clients rely on, read from the raw JSON.
	var shape struct {
		NextBatch string `json:"next_batch"`
		Rooms     struct {
			Join   map[string]map[string]json.RawMessage `json:"join"`
			Invite map[string]json.RawMessage            `json:"invite"`
			Leave  map[string]json.RawMessage            `json:"leave"`
		} `json:"rooms"`
		AccountData struct {
			Events []json.RawMessage `json:"events"`
		} `json:"account_data"`
	}
	if err := json.Unmarshal(raw, &shape); err != nil {
		t.Fatal(err)
	}
	if shape.Rooms.Invite == nil || shape.Rooms.Leave == nil || shape.AccountData.Events == nil {
		t.Errorf("empty sections must be present: %s", raw)
	}
	if len(shape.Rooms.Join) != 1 {
		t.Fatalf("join = %v, want only %s", shape.Rooms.Join, roomA)
	}
	room := shape.Rooms.Join[roomA]
	for key, want := range map[string]string{
		"account_data": `{"events":[]}`, "ephemeral": `{"events":[]}`,
		"unread_notifications": `{"notification_count":0,"highlight_count":0}`, "summary": `{}`, "state": `{"events":[]}`,
	} {
		if string(room[key]) != want {
			t.Errorf("%s = %s, want %s", key, room[key], want)
		}
	}

	resp := h.sync(aliceTok, nil)
	if pos, _ := parseToken("", resp.NextBatch); pos != h.reader.events[len(h.reader.events)-1].Pos {
		t.Errorf("next_batch = %s", resp.NextBatch)
	}
	tl := resp.Rooms.Join[roomA].Timeline
	want := []string{"m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules", "m.room.name", "one", "two"}
	if got := bodies(tl.Events); !slices.Equal(got, want) {
		t.Fatalf("timeline = %v, want %v", got, want)
	}
	if tl.Limited || tl.PrevBatch != "s0" {
		t.Errorf("limited = %v, prev_batch = %q", tl.Limited, tl.PrevBatch)
	}
	for _, ev := range tl.Events {
		if ev.RoomID != "" {
			t.Errorf("timeline event %s has room_id", ev.EventID)
		}
		if age, ok := unsignedOf(t, ev)["age"].(float64); !ok || age < 1000 {
			t.Errorf("event %s: unsigned.age = %v", ev.EventID, unsignedOf(t, ev)["age"])
		}
	}
	if txn := unsignedOf(t, tl.Events[5])["transaction_id"]; txn != "txn1" {
		t.Errorf("sender's device: transaction_id = %v, want txn1", txn)
	}
	if txn, ok := unsignedOf(t, tl.Events[6])["transaction_id"]; ok {
		t.Errorf("event sent without a transaction ID has transaction_id %v", txn)
	}

	// Alice's other device sees no transaction ID.
	other := h.sync(alice2Tok, nil).Rooms.Join[roomA].Timeline.Events
	if txn, ok := unsignedOf(t, other[5])["transaction_id"]; ok {
		t.Errorf("another device got transaction_id %v", txn)
	}
	_ = last
}

func TestInitialSyncLimitedTimeline(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	for i := 1; i <= 20; i++ {
		h.message(roomA, alice, fmt.Sprint("m", i))
	}
	resp := h.sync(aliceTok, q("filter", `{"room":{"timeline":{"limit":5}}}`))
	room := resp.Rooms.Join[roomA]
	if got := bodies(room.Timeline.Events); !slices.Equal(got, []string{"m16", "m17", "m18", "m19", "m20"}) {
		t.Fatalf("timeline = %v", got)
	}
	if !room.Timeline.Limited {
		t.Error("timeline not limited")
	}
	// The state is the room's state before the timeline: all five events.
	if got := bodies(room.State.Events); !slices.Equal(got, []string{"m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules", "m.room.name"}) {
		t.Errorf("state = %v", got)
	}

	// prev_batch continues in /messages, back to the room's creation.
	page := h.messages(aliceTok, roomA, q("dir", "b", "from", room.Timeline.PrevBatch, "limit", "10"))
	if got := bodies(page.Chunk); !slices.Equal(got, []string{"m15", "m14", "m13", "m12", "m11", "m10", "m9", "m8", "m7", "m6"}) {
		t.Fatalf("first page = %v", got)
	}
	if page.Start != room.Timeline.PrevBatch || page.End == "" {
		t.Fatalf("start = %q end = %q", page.Start, page.End)
	}
	if page.Chunk[0].RoomID != roomA {
		t.Errorf("/messages events need room_id")
	}
	rest := h.messages(aliceTok, roomA, q("dir", "b", "from", page.End, "limit", "100"))
	if got := bodies(rest.Chunk); len(got) != 10 || got[9] != "m.room.create" {
		t.Fatalf("second page = %v", got)
	}
	if rest.End != "" {
		t.Errorf("end = %q after the room's creation", rest.End)
	}
}

func TestIncrementalSync(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	h.createRoom("!carol:test", carol, "Carol's")
	first := h.sync(aliceTok, nil)

	// Nothing new: an empty answer with the same position.
	idle := h.sync(aliceTok, q("since", first.NextBatch))
	if !idle.empty() || idle.NextBatch != first.NextBatch {
		t.Fatalf("idle sync = %+v", idle)
	}

	h.message("!carol:test", carol, "not for alice")
	h.messageFrom(roomA, alice, "ALICEDESK", "t1", "hello")
	h.message(roomA, alice, "again")
	resp := h.sync(aliceTok, q("since", first.NextBatch))
	if len(resp.Rooms.Join) != 1 {
		t.Fatalf("join = %v", resp.Rooms.Join)
	}
	room := resp.Rooms.Join[roomA]
	if got := bodies(room.Timeline.Events); !slices.Equal(got, []string{"hello", "again"}) {
		t.Fatalf("timeline = %v", got)
	}
	if room.Timeline.Limited || len(room.State.Events) != 0 {
		t.Errorf("limited = %v, state = %v", room.Timeline.Limited, bodies(room.State.Events))
	}
	if txn := unsignedOf(t, room.Timeline.Events[0])["transaction_id"]; txn != "t1" {
		t.Errorf("transaction_id = %v", txn)
	}

	// full_state sends the whole state with an incremental timeline.
	full := h.sync(aliceTok, q("since", resp.NextBatch, "full_state", "true", "timeout", "5000"))
	room = full.Rooms.Join[roomA]
	if len(room.Timeline.Events) != 0 || len(room.State.Events) != 5 {
		t.Errorf("full_state: timeline %v, state %v", bodies(room.Timeline.Events), bodies(room.State.Events))
	}
}

// A limited incremental timeline comes with the state changes of the gap,
// and /messages fills the gap from since to prev_batch.
func TestIncrementalLimitedStateDelta(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	filter := `{"room":{"timeline":{"limit":3}}}`
	first := h.sync(aliceTok, q("filter", filter))

	h.state(roomA, alice, "m.room.name", "", map[string]string{"name": "Renamed"})
	for i := 1; i <= 6; i++ {
		h.message(roomA, alice, fmt.Sprint("m", i))
	}
	resp := h.sync(aliceTok, q("since", first.NextBatch, "filter", filter))
	room := resp.Rooms.Join[roomA]
	if got := bodies(room.Timeline.Events); !slices.Equal(got, []string{"m4", "m5", "m6"}) || !room.Timeline.Limited {
		t.Fatalf("timeline = %v limited = %v", got, room.Timeline.Limited)
	}
	if len(room.State.Events) != 1 || !json.Valid(room.State.Events[0].Content) ||
		string(room.State.Events[0].Content) != `{"name":"Renamed"}` {
		t.Fatalf("state delta = %v", bodies(room.State.Events))
	}

	gap := h.messages(aliceTok, roomA, q("dir", "f", "from", first.NextBatch, "to", room.Timeline.PrevBatch))
	if got := bodies(gap.Chunk); !slices.Equal(got, []string{"m.room.name", "m1", "m2", "m3"}) {
		t.Fatalf("gap = %v", got)
	}
	if gap.End != "" {
		t.Errorf("end = %q at the end of the gap", gap.End)
	}
}

func TestInviteJoinLeave(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	pos := h.sync(bobTok, nil).NextBatch

	h.member(roomA, alice, bob, "invite")
	resp := h.sync(bobTok, q("since", pos))
	inv, ok := resp.Rooms.Invite[roomA]
	if !ok || len(resp.Rooms.Join) != 0 {
		t.Fatalf("invite missing: %+v", resp.Rooms)
	}
	var types []string
	for _, raw := range inv.InviteState.Events {
		var ev struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(raw, &ev)
		types = append(types, ev.Type)
	}
	if !slices.Contains(types, "m.room.name") || !slices.Contains(types, "m.room.member") {
		t.Errorf("invite_state = %v", types)
	}
	pos = resp.NextBatch

	// Joining brings the full state, even with a short timeline.
	for i := 0; i < 3; i++ {
		h.message(roomA, alice, "before bob")
	}
	h.member(roomA, bob, bob, "join")
	resp = h.sync(bobTok, q("since", pos, "filter", `{"room":{"timeline":{"limit":2}}}`))
	room, ok := resp.Rooms.Join[roomA]
	if !ok || len(resp.Rooms.Invite) != 0 {
		t.Fatalf("join missing: %+v", resp.Rooms)
	}
	if got := bodies(room.Timeline.Events); !slices.Equal(got, []string{"before bob", "m.room.member"}) {
		t.Errorf("timeline = %v", got)
	}
	if len(room.State.Events) != 6 { // five state events and Bob's invite
		t.Errorf("state = %v", bodies(room.State.Events))
	}
	pos = resp.NextBatch

	// Leaving: the timeline stops at the leave.
	h.message(roomA, alice, "while bob is here")
	leavePos := h.member(roomA, bob, bob, "leave")
	h.message(roomA, alice, "after bob left")
	resp = h.sync(bobTok, q("since", pos))
	left, ok := resp.Rooms.Leave[roomA]
	if !ok || len(resp.Rooms.Join) != 0 {
		t.Fatalf("leave missing: %+v", resp.Rooms)
	}
	if got := bodies(left.Timeline.Events); !slices.Equal(got, []string{"while bob is here", "m.room.member"}) {
		t.Errorf("leave timeline = %v", got)
	}
	pos = resp.NextBatch
	if again := h.sync(bobTok, q("since", pos)); !again.empty() {
		t.Errorf("events after the leave reached bob: %+v", again.Rooms)
	}

	// After leaving, /messages stops at the leave.
	page := h.messages(bobTok, roomA, q("dir", "b", "limit", "2"))
	if got := bodies(page.Chunk); !slices.Equal(got, []string{"m.room.member", "while bob is here"}) {
		t.Errorf("/messages after leaving = %v", got)
	}
	if page.Start != formatToken(leavePos) {
		t.Errorf("start = %s, want the leave", page.Start)
	}

	// An archived room appears in an initial sync only with include_leave.
	if _, ok := h.sync(bobTok, nil).Rooms.Leave[roomA]; ok {
		t.Error("left room in initial sync without include_leave")
	}
	archive := h.sync(bobTok, q("filter", `{"room":{"include_leave":true}}`))
	if got := bodies(archive.Rooms.Leave[roomA].Timeline.Events); len(got) == 0 || got[len(got)-1] != "m.room.member" {
		t.Errorf("archived timeline = %v", got)
	}
}

// A rejected invite shows the rejection alone, none of the room's events.
func TestRejectedInvite(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	h.member(roomA, alice, dave, "invite")
	pos := h.sync(daveTok, nil).NextBatch
	h.message(roomA, alice, "secret")
	h.member(roomA, dave, dave, "leave")
	resp := h.sync(daveTok, q("since", pos))
	left, ok := resp.Rooms.Leave[roomA]
	if !ok {
		t.Fatalf("leave missing: %+v", resp.Rooms)
	}
	if got := bodies(left.Timeline.Events); !slices.Equal(got, []string{"m.room.member"}) || len(left.State.Events) != 0 {
		t.Errorf("timeline = %v, state = %v", got, bodies(left.State.Events))
	}
	if archive := h.sync(daveTok, q("filter", `{"room":{"include_leave":true}}`)); len(archive.Rooms.Leave) != 0 {
		t.Errorf("a room never joined is in the archive")
	}
}

func TestRoomFilter(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "A")
	h.createRoom("!b:test", alice, "B")
	resp := h.sync(aliceTok, q("filter", `{"room":{"not_rooms":["!b:test"]}}`))
	if _, ok := resp.Rooms.Join["!b:test"]; ok || len(resp.Rooms.Join) != 1 {
		t.Errorf("not_rooms: %v", resp.Rooms.Join)
	}
	resp = h.sync(aliceTok, q("filter", `{"room":{"rooms":["!b:test"]}}`))
	if _, ok := resp.Rooms.Join["!b:test"]; !ok || len(resp.Rooms.Join) != 1 {
		t.Errorf("rooms: %v", resp.Rooms.Join)
	}
	resp = h.sync(aliceTok, q("filter", `{"room":{"rooms":[]}}`))
	if len(resp.Rooms.Join) != 0 {
		t.Errorf("rooms=[]: %v", resp.Rooms.Join)
	}
}

// A profile change (join after join) is an ordinary update, without the
// full state a new join gets; a knock is reported in rooms.knock.
func TestProfileChangeAndKnock(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	pos := h.sync(aliceTok, nil).NextBatch
	h.member(roomA, alice, alice, "join")
	room := h.sync(aliceTok, q("since", pos)).Rooms.Join[roomA]
	if got := bodies(room.Timeline.Events); !slices.Equal(got, []string{"m.room.member"}) || len(room.State.Events) != 0 {
		t.Errorf("timeline = %v, state = %v", got, bodies(room.State.Events))
	}

	pos = h.sync(daveTok, nil).NextBatch
	h.member(roomA, dave, dave, "knock")
	resp := h.sync(daveTok, q("since", pos))
	if knock, ok := resp.Rooms.Knock[roomA]; !ok || len(knock.KnockState.Events) == 0 {
		t.Errorf("knock = %+v", resp.Rooms)
	}
}
