package syncapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// roomB is a second room for these tests.
const roomB = "!history-b:test"

// isOld names the messages sent before bob's join, which the fake reader
// hides.
func isOld(body string) bool { return strings.HasPrefix(body, "old") }

// laterJoin makes roomA with n messages "old i" before alice invites bob
// and he joins, then one message "new"; it returns bob's join position.
func laterJoin(h *harness, n int) int64 {
	h.t.Helper()
	h.createRoom(roomA, alice, "Room")
	for i := range n {
		h.message(roomA, alice, fmt.Sprintf("old %d", i))
	}
	h.member(roomA, alice, bob, "invite")
	join := h.member(roomA, bob, bob, "join")
	h.message(roomA, alice, "new")
	return join
}

// An initial sync leaves out of the timeline the events bob may not see,
// and asks only about those from before his join: what was sent while he
// is joined is his, and an incremental sync of a room he stayed in asks
// nothing. alice, joined from the room's start, sees everything.
func TestSyncHistoryVisibilityInitial(t *testing.T) {
	h := newHarness(t)
	laterJoin(h, 3)
	h.hide(isOld)

	first := h.sync(bobTok, nil)
	tl := first.Rooms.Join[roomA].Timeline
	want := []string{"m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules", "m.room.name", "m.room.member", "m.room.member", "new"}
	if got := bodies(tl.Events); !slices.Equal(got, want) || tl.Limited {
		t.Fatalf("bob's timeline %q limited %v, want %q", got, tl.Limited, want)
	}
	asked, _ := h.askedVisibility()
	if slices.Contains(asked, "new") || len(asked) != 10 {
		t.Fatalf("VisibleEvents asked about %q, want the 10 events up to bob's join", asked)
	}

	h.message(roomA, alice, "newer")
	next := h.sync(bobTok, q("since", first.NextBatch))
	if got := bodies(next.Rooms.Join[roomA].Timeline.Events); !slices.Equal(got, []string{"newer"}) {
		t.Fatalf("incremental timeline %q", got)
	}
	if asked, calls := h.askedVisibility(); len(asked) != 0 || calls != 0 {
		t.Fatalf("an incremental sync of a room bob stayed in asked about %q (%d HistoryOpenThrough)", asked, calls)
	}

	if got := bodies(h.sync(aliceTok, nil).Rooms.Join[roomA].Timeline.Events); !slices.Contains(got, "old 0") {
		t.Fatalf("alice's timeline %q", got)
	}
}

// A room whose history is open to its members (HistoryOpenThrough) needs
// no VisibleEvents, and the open rooms are asked for once per sync.
func TestSyncHistoryOpenRooms(t *testing.T) {
	h := newHarness(t)
	laterJoin(h, 3)
	h.createRoom(roomB, alice, "Other")
	h.message(roomB, alice, "old in B")
	h.member(roomB, alice, bob, "invite")
	h.member(roomB, bob, bob, "join")
	h.openHistory(roomA, roomB)

	resp := h.sync(bobTok, nil)
	for _, room := range []string{roomA, roomB} {
		if got := bodies(resp.Rooms.Join[room].Timeline.Events); !slices.ContainsFunc(got, isOld) {
			t.Fatalf("%s: bob's timeline %q lacks the shared history", room, got)
		}
	}
	if asked, calls := h.askedVisibility(); len(asked) != 0 || calls != 1 {
		t.Fatalf("asked VisibleEvents about %q and HistoryOpenThrough %d times, want nothing and once", asked, calls)
	}
}

// Before a join lie many events bob may not see: the timeline stops at
// the first page of them, limited, and its prev_batch leads /messages to
// the visible events beyond them.
func TestSyncHistoryHiddenRunEndsTimeline(t *testing.T) {
	h := newHarness(t)
	laterJoin(h, 50)
	h.hide(isOld)

	tl := h.sync(bobTok, q("filter", `{"room":{"timeline":{"limit":5}}}`)).Rooms.Join[roomA].Timeline
	if got := bodies(tl.Events); !slices.Equal(got, []string{"m.room.member", "m.room.member", "new"}) || !tl.Limited {
		t.Fatalf("timeline %q limited %v", got, tl.Limited)
	}
	if asked, _ := h.askedVisibility(); len(asked) > 12 {
		t.Fatalf("VisibleEvents asked about %d events: the hidden run was read on", len(asked))
	}
	back := h.messages(bobTok, roomA, q("dir", "b", "from", tl.PrevBatch, "limit", "10"))
	if got := bodies(back.Chunk); !slices.Equal(got, []string{"m.room.name", "m.room.join_rules", "m.room.power_levels", "m.room.member", "m.room.create"}) {
		t.Fatalf("/messages from prev_batch: %q", got)
	}
}

// A room left, in an initial sync with include_leave, and a room joined
// during an incremental sync are filtered the same way.
func TestSyncHistoryLeftAndNewlyJoined(t *testing.T) {
	h := newHarness(t)
	laterJoin(h, 3)
	h.member(roomA, bob, bob, "leave")
	h.hide(isOld)
	resp := h.sync(bobTok, q("filter", `{"room":{"include_leave":true}}`))
	left, ok := resp.Rooms.Leave[roomA]
	if !ok {
		t.Fatalf("no left room in %+v", resp.Rooms)
	}
	if got := bodies(left.Timeline.Events); slices.ContainsFunc(got, isOld) || !slices.Contains(got, "new") {
		t.Fatalf("left room's timeline %q", got)
	}

	h.createRoom(roomB, alice, "Other")
	h.message(roomB, alice, "old in B")
	h.member(roomB, alice, bob, "invite")
	h.member(roomB, bob, bob, "join")
	next := h.sync(bobTok, q("since", resp.NextBatch))
	if got := bodies(next.Rooms.Join[roomB].Timeline.Events); slices.ContainsFunc(got, isOld) || !slices.Contains(got, "m.room.create") {
		t.Fatalf("newly joined room's timeline %q", got)
	}
}

// Sliding sync's timelines leave out the same events.
func TestSlidingHistoryVisibility(t *testing.T) {
	h := newHarness(t)
	laterJoin(h, 3)
	h.hide(isOld)
	for _, who := range []struct {
		token string
		old   bool
	}{{bobTok, false}, {aliceTok, true}} {
		res := h.sliding(who.token, `{"lists":{"all":{"ranges":[[0,10]],"timeline_limit":20,"required_state":[]}}}`)
		var room struct {
			Timeline []json.RawMessage `json:"timeline"`
			Limited  bool              `json:"limited"`
		}
		if err := json.Unmarshal(res.Rooms[roomA], &room); err != nil {
			t.Fatalf("room %s: %v", res.Rooms[roomA], err)
		}
		got := slidingBodies(t, room.Timeline)
		if slices.ContainsFunc(got, isOld) != who.old || !slices.Contains(got, "new") || room.Limited {
			t.Fatalf("%s's timeline %q limited %v", who.token, got, room.Limited)
		}
	}
}

// sliding posts a sliding sync request and decodes the answer's rooms.
func (h *harness) sliding(token, body string) struct{ Rooms map[string]json.RawMessage } {
	h.t.Helper()
	status, data := h.request(http.MethodPost, token, h.url+slidingPath, body) // userdata_test.go
	if status != http.StatusOK {
		h.t.Fatalf("sliding sync: %d %s", status, data)
	}
	var out struct{ Rooms map[string]json.RawMessage }
	if err := json.Unmarshal(data, &out); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// slidingBodies is bodies for a sliding sync timeline.
func slidingBodies(t *testing.T, evs []json.RawMessage) []string {
	t.Helper()
	var out []string
	for _, raw := range evs {
		var ev struct {
			Type    string `json:"type"`
			Content struct {
				Body string `json:"body"`
			} `json:"content"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == "m.room.message" {
			out = append(out, ev.Content.Body)
		} else {
			out = append(out, ev.Type)
		}
	}
	return out
}
