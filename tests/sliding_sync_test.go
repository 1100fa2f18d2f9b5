package tests

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// Element X's room list: a window of the most recent rooms, growing;
// pos continuation; a subscription widening one room.
func TestSlidingElementXRoomList(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	var rooms []id.RoomID
	for _, name := range []string{"Un", "Deux", ""} {
		r := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: name}))
		must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, r.RoomID))
		rooms = append(rooms, r.RoomID)
	}
	// Activity, oldest first: room 2, then 0, then 1 (bob's message).
	must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, rooms[2], "trois"))
	must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, rooms[0], "un"))
	last := must[*mautrix.RespSendEvent](t)(bob.SendText(ctx, rooms[1], "deux"))

	first := mustSliding(t, alice, "", -1, elementXBody([][2]int{{0, 1}}, nil))
	if first.Pos == "" || first.Lists["all_rooms"].Count != 3 {
		t.Fatalf("pos %q, lists %+v", first.Pos, first.Lists)
	}
	if len(first.Rooms) != 2 || first.Rooms[string(rooms[1])] == nil || first.Rooms[string(rooms[0])] == nil {
		t.Fatalf("want the two most recent rooms, got %v", keys(first.Rooms))
	}
	r1 := first.Rooms[string(rooms[1])]
	if !r1.Initial || r1.Name == nil || *r1.Name != "Deux" || r1.Membership != "join" || !slices.Contains(r1.Lists, "all_rooms") {
		t.Fatalf("room 1: %+v", r1)
	}
	if len(r1.Timeline) != 1 || r1.Timeline[0].EventID != string(last.EventID) || !r1.Limited || r1.PrevBatch == "" {
		t.Fatalf("room 1 timeline: %+v limited=%v", r1.Timeline, r1.Limited)
	}
	if r1.BumpStamp <= first.Rooms[string(rooms[0])].BumpStamp {
		t.Fatalf("bump stamps out of order: %d <= %d", r1.BumpStamp, first.Rooms[string(rooms[0])].BumpStamp)
	}
	// $ME is alice's member event, $LAZY bob's (the timeline's sender);
	// carol-like others are not sent.
	if !r1.hasState("m.room.create", "") || !r1.hasState("m.room.name", "") || !r1.hasState("m.room.member", string(alice.UserID)) ||
		!r1.hasState("m.room.member", string(bob.UserID)) || !r1.hasState("m.room.power_levels", "") {
		t.Fatalf("room 1 required_state: %+v", r1.RequiredState)
	}
	if r1.JoinedCount == nil || *r1.JoinedCount != 2 || r1.InvitedCount == nil || *r1.InvitedCount != 0 {
		t.Fatalf("counts: %v %v", r1.JoinedCount, r1.InvitedCount)
	}

	// Growing the window sends only the room not sent yet.
	second := mustSliding(t, alice, first.Pos, 0, elementXBody([][2]int{{0, 2}}, nil))
	if len(second.Rooms) != 1 || second.Rooms[string(rooms[2])] == nil {
		t.Fatalf("want only room 2, got %v", keys(second.Rooms))
	}
	r2 := second.Rooms[string(rooms[2])]
	if r2.Name != nil || len(r2.Heroes) != 1 || r2.Heroes[0].UserID != string(bob.UserID) {
		t.Fatalf("unnamed room: name %v heroes %+v", r2.Name, r2.Heroes)
	}

	// Opening room 0: a subscription with a longer timeline and all state.
	subs := map[string]any{string(rooms[0]): map[string]any{"timeline_limit": 20, "required_state": [][2]string{{"*", "*"}}}}
	third := mustSliding(t, alice, second.Pos, 0, elementXBody([][2]int{{0, 2}}, subs))
	r0 := third.Rooms[string(rooms[0])]
	if r0 == nil || r0.Initial || !r0.Expanded || len(r0.Timeline) < 5 || r0.Limited {
		t.Fatalf("subscribed room: %+v", r0)
	}
	if !r0.hasState("m.room.join_rules", "") || !r0.hasState("m.room.member", string(bob.UserID)) {
		t.Fatalf("subscribed room state: %+v", r0.RequiredState)
	}

	// Nothing new: an immediate empty answer with timeout 0.
	fourth := mustSliding(t, alice, third.Pos, 0, elementXBody([][2]int{{0, 2}}, subs))
	if len(fourth.Rooms) != 0 {
		t.Fatalf("nothing changed, got %v", keys(fourth.Rooms))
	}
}

// A waiting request returns when a message arrives, with only that room,
// its new event live.
func TestSlidingLongPoll(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	roomID, _ := sharedRoom(t, alice, bob)
	first := mustSliding(t, alice, "", -1, elementXBody([][2]int{{0, 19}}, nil))
	done := make(chan *ssResponse, 1)
	start := time.Now()
	go func() {
		resp, err := slidingSync(t, alice, first.Pos, 30000, elementXBody([][2]int{{0, 19}}, nil))
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	time.Sleep(300 * time.Millisecond)
	sent := must[*mautrix.RespSendEvent](t)(bob.SendText(ctx, roomID, "réveil"))
	var resp *ssResponse
	select {
	case resp = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the waiting request was not woken")
	}
	if resp == nil {
		t.FailNow()
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
	r := resp.Rooms[string(roomID)]
	if r == nil || r.Initial || len(r.Timeline) != 1 || r.Timeline[0].EventID != string(sent.EventID) || r.NumLive == nil || *r.NumLive != 1 {
		t.Fatalf("woken response: %+v", r)
	}
	// The lazy member of the sender comes along.
	if !r.hasState("m.room.member", string(bob.UserID)) {
		t.Fatalf("lazy member missing: %+v", r.RequiredState)
	}
	if resp.Pos == first.Pos {
		t.Fatal("pos did not move")
	}
}

// Account data, receipts and typing through the extensions.
func TestSlidingExtensions(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	roomID, msg := sharedRoom(t, alice, bob)
	if err := alice.SetAccountData(ctx, "org.example.settings", map[string]any{"theme": "dark"}); err != nil {
		t.Fatal(err)
	}
	if err := bob.SendReceipt(ctx, roomID, msg, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	first := mustSliding(t, alice, "", -1, elementXBody([][2]int{{0, 19}}, nil))
	ad := first.Extensions.AccountData
	if ad == nil || !strings.Contains(string(joinRaw(ad.Global)), "org.example.settings") {
		t.Fatalf("account data: %+v", ad)
	}
	rc := first.Extensions.Receipts
	if rc == nil || !strings.Contains(string(rc.Rooms[string(roomID)]), string(bob.UserID)) {
		t.Fatalf("receipts: %+v", rc)
	}

	// Typing wakes a waiting request.
	done := make(chan *ssResponse, 1)
	go func() {
		resp, err := slidingSync(t, alice, first.Pos, 30000, elementXBody([][2]int{{0, 19}}, nil))
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := bob.UserTyping(ctx, roomID, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	var resp *ssResponse
	select {
	case resp = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("typing did not wake the request")
	}
	if resp == nil || resp.Extensions.Typing == nil || !strings.Contains(string(resp.Extensions.Typing.Rooms[string(roomID)]), string(bob.UserID)) {
		t.Fatalf("typing: %+v", resp)
	}

	// New room account data and a receipt, incrementally.
	if err := alice.SetRoomAccountData(ctx, roomID, "org.example.room", map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	next := mustSliding(t, alice, resp.Pos, 0, elementXBody([][2]int{{0, 19}}, nil))
	if next.Extensions.AccountData == nil || len(next.Extensions.AccountData.Rooms[string(roomID)]) != 1 || len(next.Extensions.AccountData.Global) != 0 {
		t.Fatalf("incremental account data: %+v", next.Extensions.AccountData)
	}
}

// Invites are listed with their stripped state; rooms left are told once.
func TestSlidingInviteAndLeave(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	room := must[*mautrix.RespCreateRoom](t)(bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "Invitation", Invite: []id.UserID{alice.UserID}}))
	first := mustSliding(t, alice, "", -1, elementXBody([][2]int{{0, 19}}, nil))
	r := first.Rooms[string(room.RoomID)]
	if r == nil || r.Membership != "invite" || len(r.InviteState) == 0 || !r.Initial {
		t.Fatalf("invite: %+v", r)
	}
	must[*mautrix.RespJoinRoom](t)(alice.JoinRoomByID(ctx, room.RoomID))
	second := mustSliding(t, alice, first.Pos, 0, elementXBody([][2]int{{0, 19}}, nil))
	r = second.Rooms[string(room.RoomID)]
	if r == nil || r.Membership != "join" || !r.Initial || !r.hasState("m.room.create", "") {
		t.Fatalf("after join: %+v", r)
	}
	must[*mautrix.RespLeaveRoom](t)(alice.LeaveRoom(ctx, room.RoomID))
	third := mustSliding(t, alice, second.Pos, 0, elementXBody([][2]int{{0, 19}}, nil))
	r = third.Rooms[string(room.RoomID)]
	if r == nil || r.Membership != "leave" {
		t.Fatalf("after leave: %+v", r)
	}
	fourth := mustSliding(t, alice, third.Pos, 0, elementXBody([][2]int{{0, 19}}, nil))
	if fourth.Lists["all_rooms"].Count != 0 || len(fourth.Rooms) != 0 {
		t.Fatalf("left room still listed: %+v", fourth)
	}
}

// Bad positions and bad requests are 400s with Matrix error codes.
func TestSlidingErrors(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	first := mustSliding(t, alice, "", -1, elementXBody([][2]int{{0, 19}}, nil))
	for _, pos := range []string{"999999.s1_0_0", "nonsense", "1", "-3.s1"} {
		_, err := slidingSync(t, alice, pos, 0, elementXBody([][2]int{{0, 19}}, nil))
		wantErr(t, err, "M_UNKNOWN_POS", http.StatusBadRequest)
	}
	// Another user's, or another connection's, pos is unknown too.
	_, err := slidingSync(t, bob, first.Pos, 0, elementXBody([][2]int{{0, 19}}, nil))
	wantErr(t, err, "M_UNKNOWN_POS", http.StatusBadRequest)
	other := elementXBody([][2]int{{0, 19}}, nil)
	other["conn_id"] = "encryption"
	_, err = slidingSync(t, alice, first.Pos, 0, other)
	wantErr(t, err, "M_UNKNOWN_POS", http.StatusBadRequest)
	// A new connection with the same conn_id drops the old positions.
	mustSliding(t, alice, "", -1, elementXBody([][2]int{{0, 19}}, nil))
	_, err = slidingSync(t, alice, first.Pos, 0, elementXBody([][2]int{{0, 19}}, nil))
	wantErr(t, err, "M_UNKNOWN_POS", http.StatusBadRequest)

	lists := map[string]any{}
	for i := range 11 {
		lists[string(rune('a'+i))] = map[string]any{"ranges": [][2]int{{0, 1}}, "timeline_limit": 1}
	}
	bad := []map[string]any{
		{"lists": lists},
		{"lists": map[string]any{"l": map[string]any{"ranges": [][2]int{{5, 1}}, "timeline_limit": 1}}},
		{"lists": map[string]any{"l": map[string]any{"ranges": [][2]int{{0, 1}}, "timeline_limit": -1}}},
		{"lists": map[string]any{"l": map[string]any{"ranges": [][2]int{{0, 1}}, "required_state": [][]string{{"m.room.name"}}}}},
		{"lists": map[string]any{"l": map[string]any{"ranges": [][2]int{{0, 1}}, "required_state": [][]string{{"m.room.name", "$LAZY"}}}}},
		{"room_subscriptions": map[string]any{"not-a-room": map[string]any{}}},
		{"conn_id": strings.Repeat("x", 100)},
	}
	for i, body := range bad {
		_, err := slidingSync(t, alice, "", -1, body)
		if code, status := errcode(err); status != http.StatusBadRequest || code == "" {
			t.Errorf("bad request %d: got %s (%d): %v", i, code, status, err)
		}
	}
	// Not JSON at all.
	u := alice.BuildURLWithQuery(mautrix.ClientURLPath{"unstable", "org.matrix.simplified_msc3575", "sync"}, nil)
	for _, body := range []string{`[1,2`, `[]`, `{"lists": {"l": {"ranges": "x"}}}`, `{"lists": {"l": null}}`} {
		if r := rawRequest(t, "POST", u, alice.AccessToken, body); r.status != http.StatusBadRequest {
			t.Errorf("body %s: %d %v", body, r.status, r.body)
		}
	}
}

// The connection is in the database: a pos issued before a restart still
// works after it.
func TestSlidingSurvivesRestart(t *testing.T) {
	cfg := testserver.Config(t)
	srv := testserver.Start(t, cfg)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	roomID, _ := sharedRoom(t, alice, bob)
	first := mustSliding(t, alice, "", -1, elementXBody([][2]int{{0, 19}}, nil))
	srv.Close()
	srv2 := testserver.Start(t, cfg)
	u, err := url.Parse(srv2.URL)
	if err != nil {
		t.Fatal(err)
	}
	alice.HomeserverURL = u
	bob.HomeserverURL = alice.HomeserverURL
	sent := must[*mautrix.RespSendEvent](t)(bob.SendText(ctxT(t), roomID, "après"))
	next := mustSliding(t, alice, first.Pos, 0, elementXBody([][2]int{{0, 19}}, nil))
	r := next.Rooms[string(roomID)]
	if r == nil || r.Initial || len(r.Timeline) != 1 || r.Timeline[0].EventID != string(sent.EventID) {
		t.Fatalf("after restart: %+v", r)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func joinRaw(evs []json.RawMessage) []byte {
	var out []byte
	for _, ev := range evs {
		out = append(out, ev...)
	}
	return out
}
