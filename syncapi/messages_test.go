package syncapi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chappe-matrix/chappe/roomserver"
)

func TestMessagesDirections(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	for _, b := range []string{"m1", "m2", "m3"} {
		h.message(roomA, alice, b)
	}
	// Without from: the latest events backwards, the first ones forwards.
	back := h.messages(aliceTok, roomA, q("dir", "b", "limit", "2"))
	if got := bodies(back.Chunk); !slices.Equal(got, []string{"m3", "m2"}) || back.End == "" {
		t.Fatalf("backwards = %v end %q", got, back.End)
	}
	fwd := h.messages(aliceTok, roomA, q("dir", "f", "limit", "3"))
	if got := bodies(fwd.Chunk); !slices.Equal(got, []string{"m.room.create", "m.room.member", "m.room.power_levels"}) {
		t.Fatalf("forwards = %v", got)
	}
	if fwd.Start != "s0" || fwd.End == "" {
		t.Fatalf("start %q end %q", fwd.Start, fwd.End)
	}
	more := h.messages(aliceTok, roomA, q("dir", "f", "from", fwd.End, "limit", "100"))
	if got := bodies(more.Chunk); !slices.Equal(got, []string{"m.room.join_rules", "m.room.name", "m1", "m2", "m3"}) || more.End != "" {
		t.Fatalf("forwards continued = %v end %q", got, more.End)
	}
	// A sync token works as from.
	next := h.sync(aliceTok, nil).NextBatch
	if got := bodies(h.messages(aliceTok, roomA, q("dir", "b", "from", next, "limit", "1")).Chunk); !slices.Equal(got, []string{"m3"}) {
		t.Fatalf("from next_batch = %v", got)
	}
}

func TestMessagesFilterAndLazyMembers(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	h.member(roomA, bob, bob, "join")
	h.message(roomA, bob, "from bob")
	h.message(roomA, alice, "from alice")

	page := h.messages(aliceTok, roomA, q("dir", "b", "filter", `{"types":["m.room.message"],"senders":["@bob:test"],"lazy_load_members":true}`))
	if got := bodies(page.Chunk); !slices.Equal(got, []string{"from bob"}) {
		t.Fatalf("chunk = %v", got)
	}
	if len(page.State) != 1 || *page.State[0].StateKey != bob {
		t.Fatalf("state = %v", page.State)
	}

	page = h.messages(aliceTok, roomA, q("dir", "b", "filter", `{"not_types":["m.room.*"]}`))
	if len(page.Chunk) != 0 || page.State != nil {
		t.Fatalf("not_types m.room.*: %v", bodies(page.Chunk))
	}
}

func TestMessagesForbidden(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	status, body := h.get(carolTok, "/_matrix/client/v3/rooms/"+roomA+"/messages", q("dir", "b"))
	wantError(t, status, body, 403, "M_FORBIDDEN")
	// Invited is not joined.
	h.member(roomA, alice, carol, "invite")
	status, body = h.get(carolTok, "/_matrix/client/v3/rooms/"+roomA+"/messages", q("dir", "b"))
	wantError(t, status, body, 403, "M_FORBIDDEN")
	// An invite rejected: still never joined.
	h.member(roomA, carol, carol, "leave")
	status, body = h.get(carolTok, "/_matrix/client/v3/rooms/"+roomA+"/messages", q("dir", "b"))
	wantError(t, status, body, 403, "M_FORBIDDEN")
	// An unknown room.
	status, body = h.get(aliceTok, "/_matrix/client/v3/rooms/!nowhere:test/messages", q("dir", "b"))
	wantError(t, status, body, 403, "M_FORBIDDEN")
}

func TestBadParameters(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	const sync = "/_matrix/client/v3/sync"
	const messages = "/_matrix/client/v3/rooms/" + roomA + "/messages"
	for _, tc := range []struct {
		name, path string
		params     map[string]string
		status     int
		code       string
	}{
		{"since garbage", sync, map[string]string{"since": "garbage"}, 400, "M_INVALID_PARAM"},
		{"since without number", sync, map[string]string{"since": "s"}, 400, "M_INVALID_PARAM"},
		{"since negative", sync, map[string]string{"since": "s-1"}, 400, "M_INVALID_PARAM"},
		{"timeout not a number", sync, map[string]string{"timeout": "soon"}, 400, "M_INVALID_PARAM"},
		{"full_state not a boolean", sync, map[string]string{"full_state": "yes"}, 400, "M_INVALID_PARAM"},
		{"set_presence unknown", sync, map[string]string{"set_presence": "busy"}, 400, "M_INVALID_PARAM"},
		{"filter ID unknown", sync, map[string]string{"filter": "66696p746572"}, 400, "M_INVALID_PARAM"},
		{"filter JSON broken", sync, map[string]string{"filter": `{"room":`}, 400, "M_INVALID_PARAM"},
		{"filter wrong type", sync, map[string]string{"filter": `{"room":{"timeline":{"limit":"ten"}}}`}, 400, "M_INVALID_PARAM"},
		{"filter negative limit", sync, map[string]string{"filter": `{"room":{"timeline":{"limit":-1}}}`}, 400, "M_INVALID_PARAM"},
		{"dir missing", messages, nil, 400, "M_MISSING_PARAM"},
		{"dir sideways", messages, map[string]string{"dir": "sideways"}, 400, "M_INVALID_PARAM"},
		{"from garbage", messages, map[string]string{"dir": "b", "from": "t12_3"}, 400, "M_INVALID_PARAM"},
		{"to garbage", messages, map[string]string{"dir": "b", "to": "x"}, 400, "M_INVALID_PARAM"},
		{"limit negative", messages, map[string]string{"dir": "b", "limit": "-3"}, 400, "M_INVALID_PARAM"},
		{"limit not a number", messages, map[string]string{"dir": "b", "limit": "many"}, 400, "M_INVALID_PARAM"},
		{"filter not JSON", messages, map[string]string{"dir": "b", "filter": "abc"}, 400, "M_INVALID_PARAM"},
		{"room ID malformed", "/_matrix/client/v3/rooms/notaroom/messages", map[string]string{"dir": "b"}, 400, "M_INVALID_PARAM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params := q()
			for k, v := range tc.params {
				params.Set(k, v)
			}
			status, body := h.get(aliceTok, tc.path, params)
			wantError(t, status, body, tc.status, tc.code)
		})
	}
	status, body := h.get("", sync, nil)
	wantError(t, status, body, 401, "M_MISSING_TOKEN")

	// Accepted: a negative timeout (no wait), presence values, lazy loading.
	h.sync(aliceTok, q("timeout", "-5", "set_presence", "offline", "filter", `{"room":{"state":{"lazy_load_members":true}}}`))
}

// The fake reader applies history visibility as a test sets it: the
// messages whose body a predicate names are visible to no one (none
// unless set), and the rooms marked open show every event up to the
// user's last join (HistoryOpenThrough). It records what VisibleEvents
// is asked, and has no history gaps.
var fakeHistories sync.Map // *fakeReader → *fakeHistory

type fakeHistory struct {
	mu        sync.Mutex
	hidden    func(body string) bool
	open      map[string]bool
	asked     []string // bodies (or types) of the events VisibleEvents was asked about
	openCalls int      // HistoryOpenThrough calls
}

var _ roomserver.HistoryReader = (*fakeReader)(nil)

// fakeHistoryOf is the history visibility the test set on f.
func fakeHistoryOf(f *fakeReader) *fakeHistory {
	v, _ := fakeHistories.LoadOrStore(f, &fakeHistory{open: map[string]bool{}})
	return v.(*fakeHistory)
}

func (f *fakeReader) VisibleEvents(_ context.Context, _, _ string, evs []roomserver.StreamEvent) ([]roomserver.StreamEvent, error) {
	fh := fakeHistoryOf(f)
	fh.mu.Lock()
	defer fh.mu.Unlock()
	for _, ev := range evs {
		fh.asked = append(fh.asked, bodies([]roomserver.ClientEvent{ev.Event})[0])
	}
	if fh.hidden == nil {
		return evs, nil
	}
	return slices.DeleteFunc(slices.Clone(evs), func(ev roomserver.StreamEvent) bool {
		return fh.hidden(bodies([]roomserver.ClientEvent{ev.Event})[0])
	}), nil
}

func (f *fakeReader) HistoryGaps(context.Context, string, int64, int64) ([]roomserver.HistoryGap, error) {
	return nil, nil
}

func (f *fakeReader) HistoryOpenThrough(_ context.Context, userID string, roomIDs []string) (map[string]int64, error) {
	fh := fakeHistoryOf(f)
	fh.mu.Lock()
	defer fh.mu.Unlock()
	fh.openCalls++
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int64{}
	for _, ev := range f.events {
		if fh.open[ev.Event.RoomID] && slices.Contains(roomIDs, ev.Event.RoomID) && ev.Event.Type == "m.room.member" &&
			*ev.Event.StateKey == userID && ev.membership == roomserver.MembershipJoin {
			out[ev.Event.RoomID] = ev.Pos
		}
	}
	return out, nil
}

// history is the fake reader's history visibility, which the test may
// set; it is forgotten when the test ends.
func (h *harness) history() *fakeHistory {
	h.t.Cleanup(func() { fakeHistories.Delete(h.reader) })
	return fakeHistoryOf(h.reader)
}

// hide makes the fake reader hide the messages hidden names.
func (h *harness) hide(hidden func(body string) bool) {
	fh := h.history()
	fh.mu.Lock()
	fh.hidden = hidden
	fh.mu.Unlock()
}

// openHistory marks rooms as open to their members' eyes before their join.
func (h *harness) openHistory(roomIDs ...string) {
	fh := h.history()
	fh.mu.Lock()
	for _, id := range roomIDs {
		fh.open[id] = true
	}
	fh.mu.Unlock()
}

// askedVisibility returns what VisibleEvents was asked about since the
// last call, and how many times HistoryOpenThrough was.
func (h *harness) askedVisibility() (asked []string, openCalls int) {
	fh := h.history()
	fh.mu.Lock()
	defer fh.mu.Unlock()
	asked, openCalls = fh.asked, fh.openCalls
	fh.asked, fh.openCalls = nil, 0
	return asked, openCalls
}

// pages reads a room's messages in one direction, limit a page, and
// returns the bodies of each page.
func (h *harness) pages(token, roomID, dir string, limit int) [][]string {
	h.t.Helper()
	var out [][]string
	from := ""
	for range 100 {
		params := q("dir", dir, "limit", fmt.Sprint(limit))
		if from != "" {
			params.Set("from", from)
		}
		resp := h.messages(token, roomID, params)
		out = append(out, bodies(resp.Chunk))
		if resp.End == "" {
			return out
		}
		from = resp.End
	}
	h.t.Fatal("/messages does not end")
	return nil
}

// Events the user may not see are left out, and the pages go on past
// them: no page is short while more visible events follow, in either
// direction.
func TestMessagesLeavesOutHiddenEvents(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	for i := 1; i <= 20; i++ {
		h.message(roomA, alice, fmt.Sprintf("m%d", i))
	}
	h.hide(func(body string) bool {
		var n int
		_, err := fmt.Sscanf(body, "m%d", &n)
		return err == nil && n >= 5 && n <= 15
	})
	back := h.pages(aliceTok, roomA, "b", 3)
	want := [][]string{{"m20", "m19", "m18"}, {"m17", "m16", "m4"}, {"m3", "m2", "m1"}}
	if len(back) < 3 || !slices.EqualFunc(back[:3], want, slices.Equal) {
		t.Fatalf("backwards pages %q, want %q first", back, want)
	}
	fwd := slices.Concat(h.pages(aliceTok, roomA, "f", 4)...)
	if i := slices.Index(fwd, "m1"); i < 0 || !slices.Equal(fwd[i:], []string{"m1", "m2", "m3", "m4", "m16", "m17", "m18", "m19", "m20"}) {
		t.Fatalf("forwards %q", fwd)
	}
}

// A long run of hidden events is read a bounded amount per request: the
// page comes back short with a token, and the next goes on from it.
func TestMessagesHiddenRunBounded(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	h.message(roomA, alice, "first")
	for i := range maxMessagesScan + 200 {
		h.message(roomA, alice, fmt.Sprintf("hidden %d", i))
	}
	h.message(roomA, alice, "last")
	h.hide(func(body string) bool { return strings.HasPrefix(body, "hidden") })
	pages := h.pages(aliceTok, roomA, "b", 5)
	if len(pages) < 2 || !slices.Equal(pages[0], []string{"last"}) {
		t.Fatalf("first page %q of %d", pages[0], len(pages))
	}
	all := slices.Concat(pages...)
	if i := slices.Index(all, "first"); i != 1 || all[len(all)-1] != "m.room.create" {
		t.Fatalf("pages %q", pages)
	}
}
