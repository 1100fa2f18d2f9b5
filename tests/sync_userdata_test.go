package tests

import (
	"context"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// sharedRoom creates a room of alice's that bob joins, with one message of
// alice's, and returns the room and the message.
func sharedRoom(t *testing.T, alice, bob *mautrix.Client) (id.RoomID, id.EventID) {
	t.Helper()
	ctx := ctxT(t)
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Salle"}))
	must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, room.RoomID))
	sent := must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, room.RoomID, "à lire"))
	return room.RoomID, sent.EventID
}

// waitingSync starts a long-poll of c from since and returns its result.
func waitingSync(t *testing.T, c *mautrix.Client, since string) <-chan *mautrix.RespSync {
	t.Helper()
	done := make(chan *mautrix.RespSync, 1)
	go func() {
		resp, err := c.SyncRequest(ctxT(t), 30000, since, "", false, event.PresenceOffline)
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	// Long enough for the sync to be waiting: the test then checks that
	// the change wakes it well before its 30 s timeout.
	time.Sleep(200 * time.Millisecond)
	return done
}

func woken(t *testing.T, done <-chan *mautrix.RespSync) *mautrix.RespSync {
	t.Helper()
	select {
	case resp := <-done:
		if resp == nil {
			t.FailNow()
		}
		return resp
	case <-time.After(15 * time.Second):
		t.Fatal("the waiting sync was not woken")
		return nil
	}
}

func ephemeralOf(resp *mautrix.RespSync, roomID id.RoomID, typ event.Type) *event.Event {
	room, ok := resp.Rooms.Join[roomID]
	if !ok {
		return nil
	}
	for _, ev := range room.Ephemeral.Events {
		if ev.Type == typ {
			return ev
		}
	}
	return nil
}

// Receipts: errors, delivery to a waiting sync, private receipts.
func TestSyncReceipts(t *testing.T) {
	srv := testserver.New(t)
	alice, bob, carol := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob"), srv.RegisterUser(t, "carol")
	ctx := ctxT(t)
	roomID, msg := sharedRoom(t, alice, bob)
	other := must[*mautrix.RespCreateRoom](t)(carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{}))
	otherMsg := must[*mautrix.RespSendEvent](t)(carol.SendText(ctx, other.RoomID, "ailleurs"))

	wantErr(t, carol.SendReceipt(ctx, roomID, msg, event.ReceiptTypeRead, nil), "M_FORBIDDEN", 403)
	wantErr(t, alice.SendReceipt(ctx, roomID, otherMsg.EventID, event.ReceiptTypeRead, nil), "M_NOT_FOUND", 404)
	wantErr(t, alice.SendReceipt(ctx, roomID, "$absent:nowhere", event.ReceiptTypeRead, nil), "M_NOT_FOUND", 404)

	since := must[*mautrix.RespSync](t)(bob.SyncRequest(ctx, 0, "", "", false, "")).NextBatch
	done := waitingSync(t, bob, since)
	if err := alice.SendReceipt(ctx, roomID, msg, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	ev := ephemeralOf(woken(t, done), roomID, event.EphemeralEventReceipt)
	if ev == nil {
		t.Fatal("no m.receipt")
	}
	_ = ev.Content.ParseRaw(ev.Type)
	receipts := *ev.Content.AsReceipt()
	if _, ok := receipts[msg][event.ReceiptTypeRead][alice.UserID]; !ok {
		t.Fatalf("receipts = %v", receipts)
	}

	// A private receipt reaches only its author.
	must[struct{}](t)(struct{}{}, bob.SetReadMarkers(ctx, roomID, &mautrix.ReqSetReadMarkers{ReadPrivate: msg, FullyRead: msg}))
	has := func(c *mautrix.Client) bool {
		resp := must[*mautrix.RespSync](t)(c.SyncRequest(ctx, 0, "", "", false, ""))
		ev := ephemeralOf(resp, roomID, event.EphemeralEventReceipt)
		if ev == nil {
			return false
		}
		_ = ev.Content.ParseRaw(ev.Type)
		_, ok := (*ev.Content.AsReceipt())[msg][event.ReceiptTypeReadPrivate][bob.UserID]
		return ok
	}
	if !has(bob) {
		t.Error("bob does not see his private receipt")
	}
	if has(alice) {
		t.Error("alice sees bob's private receipt")
	}
	var fullyRead struct {
		EventID id.EventID `json:"event_id"`
	}
	if err := bob.GetRoomAccountData(ctx, roomID, "m.fully_read", &fullyRead); err != nil || fullyRead.EventID != msg {
		t.Fatalf("m.fully_read = %v, %v", fullyRead, err)
	}
}

// Typing: errors, a waiting sync woken by the start and by the end.
func TestSyncTyping(t *testing.T) {
	srv := testserver.New(t)
	alice, bob, carol := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob"), srv.RegisterUser(t, "carol")
	ctx := ctxT(t)
	roomID, _ := sharedRoom(t, alice, bob)

	_, err := carol.UserTyping(ctx, roomID, true, time.Second)
	wantErr(t, err, "M_FORBIDDEN", 403)
	resp := rawRequest(t, "PUT", srv.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(roomID.String())+"/typing/"+
		url.PathEscape(alice.UserID.String()), bob.AccessToken, `{"typing":true,"timeout":1000}`)
	if resp.status != 403 || resp.body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("typing for another user: %+v", resp)
	}

	since := must[*mautrix.RespSync](t)(bob.SyncRequest(ctx, 0, "", "", false, "")).NextBatch
	done := waitingSync(t, bob, since)
	must[*mautrix.RespTyping](t)(alice.UserTyping(ctx, roomID, true, 500*time.Millisecond))
	got := woken(t, done)
	ev := ephemeralOf(got, roomID, event.EphemeralEventTyping)
	if ev == nil {
		t.Fatal("no m.typing")
	}
	_ = ev.Content.ParseRaw(ev.Type)
	if ids := ev.Content.AsTyping().UserIDs; !slices.Equal(ids, []id.UserID{alice.UserID}) {
		t.Fatalf("typing = %v", ids)
	}
	// The typing runs out; the waiting sync hears of it.
	ev = ephemeralOf(woken(t, waitingSync(t, bob, got.NextBatch)), roomID, event.EphemeralEventTyping)
	if ev == nil {
		t.Fatal("no m.typing at expiry")
	}
	_ = ev.Content.ParseRaw(ev.Type)
	if ids := ev.Content.AsTyping().UserIDs; len(ids) != 0 {
		t.Fatalf("typing after expiry = %v", ids)
	}
}

// Account data and tags, through mautrix's helpers; a waiting sync is
// woken by a change.
func TestSyncAccountDataAndTags(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	roomID, _ := sharedRoom(t, alice, bob)

	var out map[string]any
	wantErr(t, alice.GetAccountData(ctx, "fr.gouv.absent", &out), "M_NOT_FOUND", 404)
	resp := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/user/"+url.PathEscape(alice.UserID.String())+"/account_data/x", bob.AccessToken, "")
	if resp.status != 403 || resp.body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("another user's account data: %+v", resp)
	}
	wantErr(t, alice.SetAccountData(ctx, "m.fully_read", map[string]any{}), "M_BAD_JSON", 405)

	since := must[*mautrix.RespSync](t)(alice.SyncRequest(ctx, 0, "", "", false, "")).NextBatch
	done := waitingSync(t, alice, since)
	if err := alice.SetAccountData(ctx, "fr.gouv.settings", map[string]any{"theme": "sombre"}); err != nil {
		t.Fatal(err)
	}
	got := woken(t, done)
	if len(got.AccountData.Events) != 1 || got.AccountData.Events[0].Type.Type != "fr.gouv.settings" {
		t.Fatalf("account_data = %+v", got.AccountData.Events)
	}
	if err := alice.GetAccountData(ctx, "fr.gouv.settings", &out); err != nil || out["theme"] != "sombre" {
		t.Fatalf("get = %v, %v", out, err)
	}

	if err := alice.AddTag(ctx, roomID, event.RoomTagFavourite, 0.25); err != nil {
		t.Fatal(err)
	}
	tags := must[event.TagEventContent](t)(alice.GetTags(ctx, roomID))
	if tag, ok := tags.Tags[event.RoomTagFavourite]; !ok || mustFloat(tag.Order) != 0.25 {
		t.Fatalf("tags = %+v", tags)
	}
	inc := must[*mautrix.RespSync](t)(alice.SyncRequest(ctx, 0, got.NextBatch, "", false, ""))
	room := inc.Rooms.Join[roomID]
	if room == nil || len(room.AccountData.Events) != 1 || room.AccountData.Events[0].Type != event.AccountDataRoomTags {
		t.Fatalf("room account data = %+v", room)
	}
	if err := alice.RemoveTag(ctx, roomID, event.RoomTagFavourite); err != nil {
		t.Fatal(err)
	}
	if tags := must[event.TagEventContent](t)(alice.GetTags(ctx, roomID)); len(tags.Tags) != 0 {
		t.Fatalf("tags after removal = %+v", tags)
	}
}

// mautrix's Client.Sync uploads a filter, then syncs with its ID: the
// whole loop works, and delivers typing, receipts and account data to the
// syncer's handlers.
func TestSyncClientLoopWithFilter(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	roomID, msg := sharedRoom(t, alice, bob)

	var mu sync.Mutex
	seen := map[event.Type]bool{}
	syncer := bob.Syncer.(*mautrix.DefaultSyncer)
	for _, typ := range []event.Type{event.EphemeralEventTyping, event.EphemeralEventReceipt, event.EventMessage} {
		syncer.OnEventType(typ, func(_ context.Context, ev *event.Event) {
			mu.Lock()
			seen[ev.Type] = true
			mu.Unlock()
		})
	}
	syncer.OnEventType(noteType, func(_ context.Context, ev *event.Event) {
		mu.Lock()
		seen[ev.Type] = true
		mu.Unlock()
	})
	loopCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = bob.SyncWithContext(loopCtx) }()
	if err := waitFor(func() bool { mu.Lock(); defer mu.Unlock(); return seen[event.EventMessage] }); err != nil {
		t.Fatal("the sync loop did not deliver the room's message")
	}
	must[*mautrix.RespTyping](t)(alice.UserTyping(ctx, roomID, true, 5*time.Second))
	if err := alice.MarkRead(ctx, roomID, msg); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetAccountData(ctx, "fr.gouv.note", map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	want := []event.Type{event.EphemeralEventTyping, event.EphemeralEventReceipt, noteType}
	if err := waitFor(func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, typ := range want {
			if !seen[typ] {
				return false
			}
		}
		return true
	}); err != nil {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("seen = %v", seen)
	}
	filterID := must[string](t)(bob.Store.LoadFilterID(ctx, bob.UserID))
	if filterID == "" {
		t.Fatal("no filter was uploaded")
	}
	filters := srv.URL + "/_matrix/client/v3/user/" + url.PathEscape(bob.UserID.String()) + "/filter/"
	if resp := rawRequest(t, "GET", filters+filterID, bob.AccessToken, ""); resp.status != 200 {
		t.Fatalf("get filter: %+v", resp)
	}
	if resp := rawRequest(t, "GET", filters+"987654", bob.AccessToken, ""); resp.status != 404 || resp.body["errcode"] != "M_NOT_FOUND" {
		t.Fatalf("unknown filter: %+v", resp)
	}
}

// Presence: set, read, seen by a room mate; lazy-loaded members.
func TestSyncPresenceAndLazyMembers(t *testing.T) {
	srv := testserver.New(t)
	alice, bob, carol := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob"), srv.RegisterUser(t, "carol")
	ctx := ctxT(t)
	roomID, _ := sharedRoom(t, alice, bob)
	must[*mautrix.RespJoinRoom](t)(carol.JoinRoomByID(ctx, roomID))
	must[*mautrix.RespSendEvent](t)(bob.SendText(ctx, roomID, "de bob"))

	since := must[*mautrix.RespSync](t)(bob.SyncRequest(ctx, 0, "", "", false, event.PresenceOffline)).NextBatch
	done := waitingSync(t, bob, since)
	if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "en congé"}); err != nil {
		t.Fatal(err)
	}
	got := woken(t, done)
	if !slices.ContainsFunc(got.Presence.Events, func(ev *event.Event) bool { return ev.Sender == alice.UserID }) {
		t.Fatalf("presence = %+v", got.Presence.Events)
	}
	p := must[*mautrix.RespPresence](t)(bob.GetPresence(ctx, alice.UserID))
	if p.Presence != event.PresenceUnavailable || p.StatusMsg != "en congé" {
		t.Fatalf("presence = %+v", p)
	}
	wantErr(t, bob.SetPresence(ctx, mautrix.ReqPresence{Presence: "busy"}), "M_BAD_JSON", 400)

	// Lazy loading: carol sees the members of the timeline's senders (and
	// her own), not everyone's.
	filter := `{"room":{"timeline":{"limit":1},"state":{"lazy_load_members":true}}}`
	raw := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/sync?filter="+url.QueryEscape(filter), carol.AccessToken, "")
	if raw.status != 200 {
		t.Fatalf("sync: %+v", raw)
	}
	state := raw.body["rooms"].(map[string]any)["join"].(map[string]any)[roomID.String()].(map[string]any)["state"].(map[string]any)["events"].([]any)
	var members []string
	for _, ev := range state {
		ev := ev.(map[string]any)
		if ev["type"] == "m.room.member" {
			members = append(members, ev["state_key"].(string))
		}
	}
	slices.Sort(members)
	want := []string{bob.UserID.String(), carol.UserID.String()}
	slices.Sort(want)
	if !slices.Equal(members, want) {
		t.Fatalf("lazy members = %v, want %v", members, want)
	}
}

// noteType is global account data: mautrix keys its handlers by type and
// class.
var noteType = event.Type{Type: "fr.gouv.note", Class: event.AccountDataEventType}

func mustFloat(n interface{ Float64() (float64, error) }) float64 {
	f, _ := n.Float64()
	return f
}

func waitFor(cond func() bool) error {
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
