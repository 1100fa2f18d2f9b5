package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// historyRoom creates a room of alice's with a history visibility and a
// name, in which she sends n messages, then invites bob, who joins; it
// returns the room and the messages' IDs.
func historyRoom(t *testing.T, ctx context.Context, alice, bob *fedUser, visibility string, n int) (id.RoomID, []id.EventID) {
	t.Helper()
	created := must[*mautrix.RespCreateRoom](t)(alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "private_chat", Name: "Archives " + visibility,
		InitialState: []*event.Event{{
			Type: event.StateHistoryVisibility, StateKey: new(string),
			Content: event.Content{Raw: map[string]any{"history_visibility": visibility}},
		}},
	}))
	room := created.RoomID
	var sent []id.EventID
	for i := 1; i <= n; i++ {
		sent = append(sent, alice.send(ctx, room, fmt.Sprintf("message %d", i)))
	}
	if _, err := alice.cli.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.id()}); err != nil {
		t.Fatalf("alice invites bob: %v", err)
	}
	bob.waitFor("the invite", func() bool { return bob.invites[room] })
	if _, err := bob.cli.JoinRoomByID(ctx, room); err != nil {
		t.Fatalf("bob joins: %v", err)
	}
	alice.waitMember(room, bob.id(), event.MembershipJoin)
	return room, sent
}

// paginate reads a room's whole history backwards with /messages, limit
// events a page, newest first.
func paginate(t *testing.T, ctx context.Context, cli *mautrix.Client, room id.RoomID, limit int) []*event.Event {
	t.Helper()
	var all []*event.Event
	from := ""
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatal("/messages does not end")
		}
		resp := must[*mautrix.RespMessages](t)(cli.Messages(ctx, room, from, "", mautrix.DirectionBackward, nil, limit))
		all = append(all, resp.Chunk...)
		if resp.End == "" {
			return all
		}
		from = resp.End
	}
}

// bodies lists the message bodies among events, in their order.
func bodies(evs []*event.Event) []string {
	var out []string
	for _, ev := range evs {
		if body, ok := ev.Content.Raw["body"].(string); ok && ev.Type == event.EventMessage {
			out = append(out, body)
		}
	}
	return out
}

// A server that joins a room late gets its older history from the other
// servers when its user paginates back past the join (backfill), in
// order, down to the room's creation.
func TestFederationBackfillSharedHistory(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB)
	alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")
	const n = 30
	room, _ := historyRoom(t, ctx, alice, bob, "shared", n)

	history := paginate(t, ctx, bob.cli, room, 7)
	var want []string
	for i := n; i >= 1; i-- {
		want = append(want, fmt.Sprintf("message %d", i))
	}
	wantWholeHistory(t, history, want)
	// It is stored now: reading it again asks nothing of A and gives the
	// same events.
	again := paginate(t, ctx, bob.cli, room, 50)
	if len(again) != len(history) {
		t.Fatalf("second reading: %d events, first %d", len(again), len(history))
	}
	// The room goes on as usual after the backfill.
	alice.send(ctx, room, "après l'histoire")
	bob.waitText(room, "après l'histoire")
}

// With history visibility "joined", the other server gets nothing of
// what was said before its user joined: /event, /backfill and /state
// answer with redacted events (the DAG stays whole, the content does not
// leak), and a server that never was in the room is refused. What bob
// reads of it on B: TestFederationHistoryJoinedLeftOut.
func TestFederationHistoryVisibilityJoined(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB, fedC)
	alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")
	room, secret := historyRoom(t, ctx, alice, bob, "joined", 5)
	after := alice.send(ctx, room, "après l'arrivée de bob")
	bob.waitText(room, "après l'arrivée de bob")

	type pdu struct {
		EventID string         `json:"event_id"`
		Type    string         `json:"type"`
		Content map[string]any `json:"content"`
	}
	get := func(from *testserver.Server, path string) (int, []pdu, []byte) {
		t.Helper()
		status, body := asServer(t, from, srv[0], "GET", path, nil)
		var resp struct {
			PDUs []json.RawMessage `json:"pdus"`
		}
		if status != http.StatusOK {
			return status, nil, body
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out := make([]pdu, len(resp.PDUs))
		for i, raw := range resp.PDUs {
			if err := json.Unmarshal(raw, &out[i]); err != nil {
				t.Fatal(err)
			}
		}
		return status, out, body
	}
	// /event: an old message comes redacted, a message after the join whole.
	if status, pdus, body := get(srv[1], "/_matrix/federation/v1/event/"+string(secret[0])); status != http.StatusOK || len(pdus) != 1 || len(pdus[0].Content) != 0 {
		t.Fatalf("old event for B: %d %s", status, body)
	}
	if _, pdus, body := get(srv[1], "/_matrix/federation/v1/event/"+string(after)); len(pdus) != 1 || pdus[0].Content["body"] != "après l'arrivée de bob" {
		t.Fatalf("new event for B: %s", body)
	}
	// /backfill from the last secret: every message redacted.
	q := url.Values{"v": {string(secret[len(secret)-1])}, "limit": {"20"}}
	_, pdus, body := get(srv[1], "/_matrix/federation/v1/backfill/"+url.PathEscape(string(room))+"?"+q.Encode())
	if len(pdus) < len(secret) {
		t.Fatalf("backfill for B: %s", body)
	}
	for _, p := range pdus {
		if (p.Type == "m.room.message" && len(p.Content) != 0) || (p.Type == "m.room.name" && p.Content["name"] != nil) {
			t.Fatalf("backfill gave B %s %s unredacted: %v", p.Type, p.EventID, p.Content)
		}
	}
	// /get_missing_events before the new message: the old ones redacted.
	status, body := asServer(t, srv[1], srv[0], "POST", "/_matrix/federation/v1/get_missing_events/"+url.PathEscape(string(room)),
		map[string]any{"earliest_events": []string{}, "latest_events": []string{string(after)}, "limit": 20})
	var missing struct {
		Events []pdu `json:"events"`
	}
	if err := json.Unmarshal(body, &missing); status != http.StatusOK || err != nil || len(missing.Events) < len(secret) {
		t.Fatalf("get_missing_events for B: %d %s", status, body)
	}
	for _, p := range missing.Events {
		if p.Type == "m.room.message" && len(p.Content) != 0 {
			t.Fatalf("get_missing_events gave B %s unredacted: %v", p.EventID, p.Content)
		}
	}
	// /state at an old message: the state comes redacted (no name).
	status, body = asServer(t, srv[1], srv[0], "GET", "/_matrix/federation/v1/state/"+url.PathEscape(string(room))+"?event_id="+url.QueryEscape(string(secret[0])), nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"m.room.name"`) || strings.Contains(string(body), "Archives") {
		t.Fatalf("state at an old event for B: %d %s", status, body)
	}
	// A server that never had anyone in the room gets nothing.
	if status, _, body := get(srv[2], "/_matrix/federation/v1/event/"+string(after)); status != http.StatusForbidden {
		t.Fatalf("event for a server never in the room: %d %s", status, body)
	}
}

// The two federation endpoints asked by others than rooms' servers:
// OpenID userinfo (unsigned, for third-party services) and the space
// hierarchy (signed).
func TestFederationOpenIDAndHierarchy(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB)
	alice := newFedUser(t, srv[0], "alice")

	token := must[*mautrix.RespOpenIDToken](t)(alice.cli.RequestOpenIDToken(ctx))
	userinfo := func(tok string) (int, map[string]any) {
		t.Helper()
		u := "https://" + srv[0].FederationAddr() + "/_matrix/federation/v1/openid/userinfo?access_token=" + url.QueryEscape(tok)
		resp, err := fedHTTPClient(t, srv[0]).Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(data, &out)
		return resp.StatusCode, out
	}
	if status, body := userinfo(token.AccessToken); status != http.StatusOK || body["sub"] != string(alice.id()) {
		t.Fatalf("userinfo: %d %v", status, body)
	}
	if status, body := userinfo("not-a-token"); status != http.StatusUnauthorized || body["errcode"] != "M_UNKNOWN_TOKEN" {
		t.Fatalf("userinfo with a wrong token: %d %v", status, body)
	}

	space := must[*mautrix.RespCreateRoom](t)(alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "public_chat", Name: "Espace", CreationContent: map[string]any{"type": "m.space"},
	})).RoomID
	child := func(name, preset string) id.RoomID {
		r := must[*mautrix.RespCreateRoom](t)(alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: preset, Name: name})).RoomID
		must[*mautrix.RespSendEvent](t)(alice.cli.SendStateEvent(ctx, space, event.StateSpaceChild, r.String(),
			map[string]any{"via": []string{fedA}}))
		return r
	}
	public := child("Salon public", "public_chat")
	private := child("Salon privé", "private_chat")
	status, body := asServer(t, srv[1], srv[0], "GET", "/_matrix/federation/v1/hierarchy/"+url.PathEscape(string(space)), nil)
	if status != http.StatusOK {
		t.Fatalf("hierarchy: %d %s", status, body)
	}
	var h struct {
		Room struct {
			RoomID   string `json:"room_id"`
			RoomType string `json:"room_type"`
		} `json:"room"`
		Children []struct {
			RoomID string `json:"room_id"`
		} `json:"children"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatal(err)
	}
	if h.Room.RoomID != string(space) || h.Room.RoomType != "m.space" || len(h.Children) != 1 || h.Children[0].RoomID != string(public) {
		t.Fatalf("hierarchy: %s", body)
	}
	status, body = asServer(t, srv[1], srv[0], "GET", "/_matrix/federation/v1/hierarchy/"+url.PathEscape(string(private)), nil)
	if status != http.StatusNotFound {
		t.Fatalf("hierarchy of a private room: %d %s", status, body)
	}
}

// wantWholeHistory checks a history paginated back (newest first): its
// messages are want, each event comes once, and it ends with the room's
// creation.
func wantWholeHistory(t *testing.T, history []*event.Event, want []string) {
	t.Helper()
	if got := bodies(history); !slices.Equal(got, want) {
		var shown []string
		for _, ev := range history {
			shown = append(shown, fmt.Sprintf("%s %s %s %d keys", ev.ID, ev.Type.Type, ev.Sender, len(ev.Content.Raw)))
		}
		t.Fatalf("bob's history on B (newest first):\n got %q\nwant %q\nevents:\n%s", got, want, strings.Join(shown, "\n"))
	}
	seen := map[id.EventID]bool{}
	for _, ev := range history {
		if seen[ev.ID] {
			t.Fatalf("%s (%s) is shown twice", ev.ID, ev.Type)
		}
		seen[ev.ID] = true
	}
	if last := history[len(history)-1]; last.Type != event.StateCreate {
		t.Fatalf("the history ends with %s (%s), not the room's creation", last.Type, last.ID)
	}
}
