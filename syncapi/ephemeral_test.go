package syncapi

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// receiptsIn reads a room's m.receipt content: event → type → user → data.
func receiptsIn(t *testing.T, resp *syncResponse, roomID string) map[string]map[string]map[string]map[string]any {
	t.Helper()
	room, ok := resp.Rooms.Join[roomID]
	if !ok {
		return nil
	}
	ev := findEvent(t, room.Ephemeral.Events, "m.receipt")
	if ev == nil {
		return nil
	}
	var out map[string]map[string]map[string]map[string]any
	raw, _ := json.Marshal(ev["content"])
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReceipts(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	h.member(roomA, bob, bob, "join")
	h.message(roomA, alice, "read me")
	msg := h.reader.events[len(h.reader.events)-1].Event.EventID
	h.createRoom("!b:test", carol, "Carol's")
	other := h.reader.events[len(h.reader.events)-1].Event.EventID
	receipt := func(typ, eventID string) string {
		return "/rooms/" + esc(roomA) + "/receipt/" + typ + "/" + esc(eventID)
	}
	for _, c := range []struct {
		name, token, path, body, code string
		status                        int
	}{
		{"not joined", carolTok, receipt("m.read", msg), `{}`, "M_FORBIDDEN", 403},
		{"event of another room", aliceTok, receipt("m.read", other), `{}`, "M_NOT_FOUND", 404},
		{"unknown event", aliceTok, receipt("m.read", "$nope"), `{}`, "M_NOT_FOUND", 404},
		{"bad type", aliceTok, receipt("m.seen", msg), `{}`, "M_INVALID_PARAM", 400},
		{"empty thread", aliceTok, receipt("m.read", msg), `{"thread_id":""}`, "M_INVALID_PARAM", 400},
		{"thread on fully_read", aliceTok, receipt("m.fully_read", msg), `{"thread_id":"main"}`, "M_INVALID_PARAM", 400},
		{"not in thread", aliceTok, receipt("m.read", msg), `{"thread_id":"` + other + `"}`, "M_INVALID_PARAM", 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := h.do("POST", c.token, c.path, c.body)
			wantError(t, status, body, c.status, c.code)
		})
	}

	aliceSince := h.sync(aliceTok, nil).NextBatch
	bobSince := h.sync(bobTok, nil).NextBatch
	// A waiting sync of Bob is woken by Alice's receipt.
	done := h.startSync(bobTok, q("since", bobSince, "timeout", "30000"))
	eventually(t, "bob's sync to wait", func() bool { return h.api.notifier.waiters(bob) == 1 })
	h.mustDo("POST", aliceTok, receipt("m.read", msg), `{"thread_id":"main"}`)
	got := receiptsIn(t, receive(t, done), roomA)
	if r := got[msg]["m.read"][alice]; r == nil || r["thread_id"] != "main" || r["ts"] == nil {
		t.Fatalf("bob's receipts = %v", got)
	}
	// Private receipts and the fully-read marker are Alice's alone.
	h.mustDo("POST", aliceTok, receipt("m.read.private", msg), ``)
	h.mustDo("POST", aliceTok, "/rooms/"+esc(roomA)+"/read_markers", `{"m.fully_read":"`+msg+`"}`)
	mine := h.sync(aliceTok, q("since", aliceSince))
	if r := receiptsIn(t, mine, roomA); r[msg]["m.read.private"][alice] == nil || r[msg]["m.read"][alice] == nil {
		t.Fatalf("alice's receipts = %v", r)
	}
	if ev := findEvent(t, mine.Rooms.Join[roomA].AccountData.Events, "m.fully_read"); ev == nil ||
		ev["content"].(map[string]any)["event_id"] != msg {
		t.Fatalf("m.fully_read = %v", ev)
	}
	theirs := h.sync(bobTok, nil)
	if r := receiptsIn(t, theirs, roomA); r[msg]["m.read.private"] != nil || r[msg]["m.read"][alice] == nil {
		t.Fatalf("bob sees %v", r)
	}
	if ev := findEvent(t, theirs.Rooms.Join[roomA].AccountData.Events, "m.fully_read"); ev != nil {
		t.Fatal("bob sees alice's m.fully_read")
	}
	// read_markers checks every event first.
	status, body := h.do("POST", aliceTok, "/rooms/"+esc(roomA)+"/read_markers", `{"m.read":"`+msg+`","m.fully_read":"$nope"}`)
	wantError(t, status, body, 404, "M_NOT_FOUND")
}

func TestTyping(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	h.member(roomA, bob, bob, "join")
	typing := "/rooms/" + esc(roomA) + "/typing/"
	for _, c := range []struct {
		name, token, path, body, code string
		status                        int
	}{
		{"other user", bobTok, typing + esc(alice), `{"typing":true,"timeout":1000}`, "M_FORBIDDEN", 403},
		{"not joined", carolTok, typing + esc(carol), `{"typing":true,"timeout":1000}`, "M_FORBIDDEN", 403},
		{"no typing", aliceTok, typing + esc(alice), `{}`, "M_BAD_JSON", 400},
		{"no timeout", aliceTok, typing + esc(alice), `{"typing":true}`, "M_BAD_JSON", 400},
		{"bad type", aliceTok, typing + esc(alice), `{"typing":"yes"}`, "M_BAD_JSON", 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := h.do("PUT", c.token, c.path, c.body)
			wantError(t, status, body, c.status, c.code)
		})
	}
	typers := func(resp *syncResponse) []string {
		room, ok := resp.Rooms.Join[roomA]
		if !ok {
			return nil
		}
		ev := findEvent(t, room.Ephemeral.Events, "m.typing")
		if ev == nil {
			return nil
		}
		var out []string
		for _, u := range ev["content"].(map[string]any)["user_ids"].([]any) {
			out = append(out, u.(string))
		}
		return append(out, "") // "" marks an m.typing event, even an empty one
	}
	since := h.sync(bobTok, nil).NextBatch
	done := h.startSync(bobTok, q("since", since, "timeout", "30000"))
	eventually(t, "bob's sync to wait", func() bool { return h.api.notifier.waiters(bob) == 1 })
	// A timeout over the cap is cut to it; a short one ends the typing.
	h.mustDo("PUT", aliceTok, typing+esc(alice), `{"typing":true,"timeout":400}`)
	resp := receive(t, done)
	if got := typers(resp); !slices.Equal(got, []string{alice, ""}) {
		t.Fatalf("typers = %v", got)
	}
	// The initial sync shows who types now.
	if got := typers(h.sync(bobTok, nil)); !slices.Equal(got, []string{alice, ""}) {
		t.Fatalf("initial typers = %v", got)
	}
	// The end of the typing wakes the waiting sync, with nobody typing.
	start := time.Now()
	done = h.startSync(bobTok, q("since", resp.NextBatch, "timeout", "30000"))
	resp = receive(t, done)
	if got := typers(resp); !slices.Equal(got, []string{""}) {
		t.Fatalf("typers after expiry = %v", got)
	}
	if time.Since(start) > 10*time.Second {
		t.Error("expiry took too long")
	}
	// Stopping explicitly.
	// Typing updates are applied from the stream, after the PUT answers:
	// wait for the start to be seen, or the stop check below could pass
	// before it is.
	h.mustDo("PUT", aliceTok, typing+esc(alice), `{"typing":true,"timeout":60000}`)
	eventually(t, "typing to start", func() bool {
		users, _ := h.api.notifier.typing.typers(roomA)
		return slices.Equal(users, []string{alice})
	})
	h.mustDo("PUT", aliceTok, typing+esc(alice), `{"typing":false}`)
	eventually(t, "typing to stop", func() bool {
		users, _ := h.api.notifier.typing.typers(roomA)
		return len(users) == 0
	})
	if got := typers(h.sync(bobTok, q("since", resp.NextBatch))); !slices.Equal(got, []string{""}) {
		t.Fatalf("typers after stop = %v", got)
	}
}

func TestPresence(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	h.member(roomA, bob, bob, "join")
	status := func(u string) string { return "/presence/" + esc(u) + "/status" }

	bobSince := h.sync(bobTok, q("set_presence", "offline")).NextBatch
	done := h.startSync(bobTok, q("since", bobSince, "timeout", "30000", "set_presence", "offline"))
	eventually(t, "bob's sync to wait", func() bool { return h.api.notifier.waiters(bob) == 1 })
	h.mustDo("PUT", aliceTok, status(alice), `{"presence":"unavailable","status_msg":"en réunion"}`)
	ev := findEvent(t, receive(t, done).Presence.Events, "m.presence")
	if ev == nil || ev["sender"] != alice || ev["content"].(map[string]any)["status_msg"] != "en réunion" {
		t.Fatalf("presence = %v", ev)
	}
	var got map[string]any
	_ = json.Unmarshal(h.mustDo("GET", bobTok, status(alice), ""), &got)
	if got["presence"] != "unavailable" || got["status_msg"] != "en réunion" {
		t.Fatalf("GET = %v", got)
	}
	// A sync sets its user online unless told otherwise.
	h.sync(aliceTok, nil)
	_ = json.Unmarshal(h.mustDo("GET", aliceTok, status(alice), ""), &got)
	if got["presence"] != "online" {
		t.Fatalf("after sync: %v", got)
	}
	for _, c := range []struct {
		method, token, path, body, code string
		status                          int
	}{
		{"PUT", bobTok, status(alice), `{"presence":"online"}`, "M_FORBIDDEN", 403},
		{"GET", carolTok, status(alice), ``, "M_FORBIDDEN", 403}, // shares no room
		{"PUT", aliceTok, status(alice), `{"presence":"busy"}`, "M_BAD_JSON", 400},
		{"GET", aliceTok, status("nope"), ``, "M_INVALID_PARAM", 400},
	} {
		st, body := h.do(c.method, c.token, c.path, c.body)
		wantError(t, st, body, c.status, c.code)
	}
	if evs := h.sync(carolTok, nil).Presence.Events; len(evs) != 1 {
		t.Errorf("carol sees %v (only her own presence)", eventTypes(evs))
	}
}

func TestPresenceDisabled(t *testing.T) {
	h := newHarnessWith(t, true)
	h.createRoom(roomA, alice, "Room")
	h.member(roomA, bob, bob, "join")
	h.mustDo("PUT", aliceTok, "/presence/"+esc(alice)+"/status", `{"presence":"unavailable"}`)
	if got := string(h.mustDo("GET", bobTok, "/presence/"+esc(alice)+"/status", "")); got != `{"presence":"offline"}` {
		t.Fatalf("GET = %s", got)
	}
	st, body := h.do("PUT", bobTok, "/presence/"+esc(alice)+"/status", `{"presence":"online"}`)
	wantError(t, st, body, 403, "M_FORBIDDEN")
	if evs := h.sync(bobTok, nil).Presence.Events; len(evs) != 0 {
		t.Fatalf("presence sent while disabled: %v", eventTypes(evs))
	}
}

func TestTokens(t *testing.T) {
	for in, want := range map[string]streamPos{"s42": {Room: 42}, "s1_2_3": {1, 2, 3}} {
		got, err := parseStreamToken("since", in)
		if err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
		if again, _ := parseStreamToken("since", got.String()); again != got {
			t.Errorf("%s does not round-trip", in)
		}
	}
	for _, bad := range []string{"", "s", "s1_2", "s1__3", "s-1", "s1_+2_3", "t1", "s1_2_3_4"} {
		if _, err := parseStreamToken("since", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
