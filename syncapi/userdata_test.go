package syncapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/chappe-matrix/chappe/roomserver"
)

// do sends a request with a JSON body and returns the status and body.
func (h *harness) do(method, token, path, body string) (int, []byte) {
	h.t.Helper()
	return h.request(method, token, h.url+"/_matrix/client/v3"+path, body)
}

// request sends a request with a JSON body to a URL of the harness.
func (h *harness) request(method, token, url, body string) (int, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, data
}

// mustDo sends a request that must succeed.
func (h *harness) mustDo(method, token, path, body string) []byte {
	h.t.Helper()
	status, data := h.do(method, token, path, body)
	if status != http.StatusOK {
		h.t.Fatalf("%s %s: %d %s", method, path, status, data)
	}
	return data
}

// eventTypes lists the types of encoded events.
func eventTypes(evs []json.RawMessage) []string {
	var out []string
	for _, raw := range evs {
		var ev struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(raw, &ev)
		out = append(out, ev.Type)
	}
	return out
}

func findEvent(t *testing.T, evs []json.RawMessage, typ string) map[string]any {
	t.Helper()
	for _, raw := range evs {
		var ev map[string]any
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev["type"] == typ {
			return ev
		}
	}
	return nil
}

func esc(s string) string { return url.PathEscape(s) }

func TestAccountDataEndpointsAndSync(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	base := "/user/" + esc(alice)

	cases := []struct {
		name, method, token, path, body, code string
		status                                int
	}{
		{"other user's put", "PUT", bobTok, base + "/account_data/x.y", `{}`, "M_FORBIDDEN", 403},
		{"other user's get", "GET", bobTok, base + "/account_data/x.y", ``, "M_FORBIDDEN", 403},
		{"absent", "GET", aliceTok, base + "/account_data/x.none", ``, "M_NOT_FOUND", 404},
		{"fully_read", "PUT", aliceTok, base + "/account_data/m.fully_read", `{}`, "M_BAD_JSON", 405},
		{"push rules", "PUT", aliceTok, base + "/rooms/" + esc(roomA) + "/account_data/m.push_rules", `{}`, "M_BAD_JSON", 405},
		{"not an object", "PUT", aliceTok, base + "/account_data/x.y", `[1]`, "M_NOT_JSON", 400},
		{"not json", "PUT", aliceTok, base + "/account_data/x.y", `{`, "M_NOT_JSON", 400},
		{"too large", "PUT", aliceTok, base + "/account_data/x.y", `{"a":"` + strings.Repeat("a", 70<<10) + `"}`, "M_TOO_LARGE", 413},
		{"bad room", "PUT", aliceTok, base + "/rooms/nope/account_data/x.y", `{}`, "M_INVALID_PARAM", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := h.do(c.method, c.token, c.path, c.body)
			wantError(t, status, body, c.status, c.code)
		})
	}

	first := h.sync(aliceTok, nil)
	h.mustDo("PUT", aliceTok, base+"/account_data/x.global", `{"v":1}`)
	h.mustDo("PUT", aliceTok, base+"/rooms/"+esc(roomA)+"/account_data/x.room", `{"v":2}`)
	if got := string(h.mustDo("GET", aliceTok, base+"/account_data/x.global", "")); got != `{"v":1}` {
		t.Errorf("GET = %s", got)
	}
	if got := string(h.mustDo("GET", aliceTok, base+"/rooms/"+esc(roomA)+"/account_data/x.room", "")); got != `{"v":2}` {
		t.Errorf("GET room = %s", got)
	}
	// Room data is not global data.
	status, body := h.do("GET", aliceTok, base+"/account_data/x.room", "")
	wantError(t, status, body, 404, "M_NOT_FOUND")

	inc := h.sync(aliceTok, q("since", first.NextBatch))
	if got := eventTypes(inc.AccountData.Events); !slices.Equal(got, []string{"x.global"}) {
		t.Fatalf("incremental global = %v", got)
	}
	room, ok := inc.Rooms.Join[roomA]
	if !ok || !slices.Equal(eventTypes(room.AccountData.Events), []string{"x.room"}) {
		t.Fatalf("incremental room = %+v", inc.Rooms.Join)
	}
	if len(room.Timeline.Events) != 0 {
		t.Errorf("timeline = %v", bodies(room.Timeline.Events))
	}
	// Only what changed since the token.
	h.mustDo("PUT", aliceTok, base+"/account_data/x.other", `{}`)
	again := h.sync(aliceTok, q("since", inc.NextBatch))
	if got := eventTypes(again.AccountData.Events); !slices.Equal(got, []string{"x.other"}) {
		t.Fatalf("second incremental = %v", got)
	}
	if _, ok := again.Rooms.Join[roomA]; ok {
		t.Error("room sent again without news")
	}
	// An initial sync has everything; a filter narrows it.
	all := h.sync(aliceTok, nil)
	// Three: the two set above and the default m.push_rules.
	if got := eventTypes(all.AccountData.Events); len(got) != 3 {
		t.Fatalf("initial global = %v", got)
	}
	if got := eventTypes(all.Rooms.Join[roomA].AccountData.Events); !slices.Equal(got, []string{"x.room"}) {
		t.Fatalf("initial room = %v", got)
	}
	filtered := h.sync(aliceTok, q("filter", `{"account_data":{"types":["x.g*"]},"room":{"account_data":{"not_types":["x.room"]}}}`))
	if got := eventTypes(filtered.AccountData.Events); !slices.Equal(got, []string{"x.global"}) {
		t.Fatalf("filtered global = %v", got)
	}
	if got := filtered.Rooms.Join[roomA].AccountData.Events; len(got) != 0 {
		t.Fatalf("filtered room = %v", eventTypes(got))
	}
	// Bob sees none of it, only his own default push rules.
	if got := eventTypes(h.sync(bobTok, nil).AccountData.Events); !slices.Equal(got, []string{"m.push_rules"}) {
		t.Fatalf("bob got %v", got)
	}
}

func TestTags(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	tags := "/user/" + esc(alice) + "/rooms/" + esc(roomA) + "/tags"
	if got := string(h.mustDo("GET", aliceTok, tags, "")); got != `{"tags":{}}` {
		t.Fatalf("no tags = %s", got)
	}
	since := h.sync(aliceTok, nil).NextBatch
	h.mustDo("PUT", aliceTok, tags+"/u.work", `{"order":0.5}`)
	h.mustDo("PUT", aliceTok, tags+"/m.favourite", `{}`)
	for _, body := range []string{`{"order":"high"}`, `{"order":2}`} {
		status, resp := h.do("PUT", aliceTok, tags+"/u.bad", body)
		wantError(t, status, resp, 400, "M_BAD_JSON")
	}
	status, resp := h.do("PUT", bobTok, tags+"/u.work", `{}`)
	wantError(t, status, resp, 403, "M_FORBIDDEN")
	h.mustDo("DELETE", aliceTok, tags+"/m.favourite", "")
	if got := string(h.mustDo("GET", aliceTok, tags, "")); got != `{"tags":{"u.work":{"order":0.5}}}` {
		t.Fatalf("tags = %s", got)
	}
	ev := findEvent(t, h.sync(aliceTok, q("since", since)).Rooms.Join[roomA].AccountData.Events, "m.tag")
	if ev == nil || ev["content"].(map[string]any)["tags"].(map[string]any)["u.work"] == nil {
		t.Fatalf("m.tag in sync = %v", ev)
	}
}

func TestFilters(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	h.message(roomA, alice, "one")
	h.message(roomA, alice, "two")
	path := "/user/" + esc(alice) + "/filter"
	var created struct {
		FilterID string `json:"filter_id"`
	}
	filter := `{"room":{"timeline":{"limit":1}}}`
	if err := json.Unmarshal(h.mustDo("POST", aliceTok, path, filter), &created); err != nil || created.FilterID == "" {
		t.Fatalf("filter_id: %v %q", err, created.FilterID)
	}
	if got := string(h.mustDo("GET", aliceTok, path+"/"+created.FilterID, "")); got != filter {
		t.Errorf("stored filter = %s", got)
	}
	resp := h.sync(aliceTok, q("filter", created.FilterID))
	if got := bodies(resp.Rooms.Join[roomA].Timeline.Events); !slices.Equal(got, []string{"two"}) {
		t.Fatalf("timeline with stored filter = %v", got)
	}
	for _, c := range []struct {
		method, token, path, body, code string
		status                          int
	}{
		{"POST", bobTok, path, `{}`, "M_FORBIDDEN", 403},
		{"GET", aliceTok, path + "/999", ``, "M_NOT_FOUND", 404},
		{"GET", aliceTok, path + "/nope", ``, "M_NOT_FOUND", 404},
		{"GET", bobTok, "/user/" + esc(bob) + "/filter/" + created.FilterID, ``, "M_NOT_FOUND", 404},
		{"POST", aliceTok, path, `{"room":{"timeline":{"limit":"ten"}}}`, "M_BAD_JSON", 400},
		{"POST", aliceTok, path, `{"room":{"timeline":{"limit":-1}}}`, "M_BAD_JSON", 400},
		{"POST", aliceTok, path, `{"event_format":"xml"}`, "M_BAD_JSON", 400},
		{"POST", aliceTok, path, `{"room":{"rooms":["nope"]}}`, "M_BAD_JSON", 400},
		{"POST", aliceTok, path, `[]`, "M_NOT_JSON", 400},
	} {
		status, body := h.do(c.method, c.token, c.path, c.body)
		wantError(t, status, body, c.status, c.code)
	}
	status, body := h.get(aliceTok, "/_matrix/client/v3/sync", q("filter", "424242"))
	wantError(t, status, body, 400, "M_INVALID_PARAM")
}

func TestTimelineAndStateFilters(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	h.member(roomA, bob, bob, "join")
	h.message(roomA, alice, "from alice")
	h.message(roomA, bob, "from bob")
	h.createRoom("!b:test", alice, "Other")

	resp := h.sync(aliceTok, q("filter", `{"room":{"rooms":["`+roomA+`"],"timeline":{"types":["m.room.message"],"not_senders":["`+bob+`"]},"state":{"types":["m.room.name"]}}}`))
	if _, ok := resp.Rooms.Join["!b:test"]; ok {
		t.Error("room.rooms did not exclude !b:test")
	}
	room := resp.Rooms.Join[roomA]
	if got := bodies(room.Timeline.Events); !slices.Equal(got, []string{"from alice"}) {
		t.Fatalf("timeline = %v", got)
	}
	if got := bodies(room.State.Events); !slices.Equal(got, []string{"m.room.name"}) {
		t.Fatalf("state = %v", got)
	}
}

func TestLazyLoadMembers(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	for _, u := range []string{bob, carol, dave} {
		h.member(roomA, u, u, "join")
	}
	for i := range 5 {
		h.message(roomA, carol, "filler "+string(rune('a'+i)))
	}
	h.message(roomA, bob, "from bob")

	lazy := `{"room":{"timeline":{"limit":2},"state":{"lazy_load_members":true}}}`
	resp := h.sync(daveTok, q("filter", lazy))
	members := memberKeys(resp.Rooms.Join[roomA].State.Events)
	slices.Sort(members)
	if want := []string{bob, carol, dave}; !slices.Equal(members, want) {
		t.Fatalf("lazy members = %v, want %v (timeline senders and self)", members, want)
	}
	if !slices.Contains(bodies(resp.Rooms.Join[roomA].State.Events), "m.room.name") {
		t.Error("other state is missing")
	}
	// Without lazy loading, everyone.
	full := memberKeys(h.sync(daveTok, q("filter", `{"room":{"timeline":{"limit":2}}}`)).Rooms.Join[roomA].State.Events)
	if len(full) != 4 {
		t.Fatalf("members = %v", full)
	}
	// Incremental: alice speaks; her member event comes with it.
	h.message(roomA, alice, "from alice")
	inc := h.sync(daveTok, q("filter", lazy, "since", resp.NextBatch))
	if got := memberKeys(inc.Rooms.Join[roomA].State.Events); !slices.Equal(got, []string{alice}) {
		t.Fatalf("incremental lazy members = %v", got)
	}
}

func memberKeys(evs []roomserver.ClientEvent) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == "m.room.member" && ev.StateKey != nil {
			out = append(out, *ev.StateKey)
		}
	}
	return out
}
