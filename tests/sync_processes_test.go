package tests

import (
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// Two sync processes share the database and NATS: a token issued by one
// is good on the other, and a sync waiting on one is woken by a receipt,
// a typing notification or account data set through the other.
func TestSyncAcrossProcesses(t *testing.T) {
	one := testserver.New(t, exposeNATS(t))
	two := testserver.New(t, testserver.Shared(one), testserver.WithComponents(config.ComponentClientAPI, config.ComponentSyncAPI))
	alice := one.RegisterUser(t, "alice")
	bobOnOne := one.RegisterUser(t, "bob")
	ctx := ctxT(t)
	roomID, msg := sharedRoom(t, alice, bobOnOne)
	bob := must[*mautrix.Client](t)(mautrix.NewClient(two.URL, bobOnOne.UserID, bobOnOne.AccessToken))

	// Bob's token from process one, his long-poll on process two.
	since := must[*mautrix.RespSync](t)(bobOnOne.SyncRequest(ctx, 0, "", "", false, "")).NextBatch
	done := waitingSync(t, bob, since)
	if err := alice.SendReceipt(ctx, roomID, msg, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	got := woken(t, done)
	if ephemeralOf(got, roomID, event.EphemeralEventReceipt) == nil {
		t.Fatalf("no receipt: %+v", got.Rooms.Join[roomID])
	}

	done = waitingSync(t, bob, got.NextBatch)
	must[*mautrix.RespTyping](t)(alice.UserTyping(ctx, roomID, true, 10*time.Second))
	got = woken(t, done)
	ev := ephemeralOf(got, roomID, event.EphemeralEventTyping)
	if ev == nil {
		t.Fatal("no typing")
	}
	_ = ev.Content.ParseRaw(ev.Type)
	if ids := ev.Content.AsTyping().UserIDs; len(ids) != 1 || ids[0] != alice.UserID {
		t.Fatalf("typing = %v", ids)
	}

	// Bob's own account data, set on process one, wakes his sync on two.
	done = waitingSync(t, bob, got.NextBatch)
	if err := bobOnOne.SetRoomAccountData(ctx, roomID, "fr.gouv.brouillon", map[string]any{"texte": "…"}); err != nil {
		t.Fatal(err)
	}
	got = woken(t, done)
	room := got.Rooms.Join[roomID]
	if room == nil || len(room.AccountData.Events) != 1 {
		t.Fatalf("room account data = %+v", room)
	}
}
