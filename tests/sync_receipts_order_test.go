package tests

import (
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// receiptsOf reads, from an initial sync of c, the event each user's
// receipt of type typ names in roomID (the main timeline's, for threaded
// receipts, when thread is "main").
func receiptsOf(t *testing.T, c *mautrix.Client, roomID id.RoomID, typ, thread string) map[string]string {
	t.Helper()
	resp := must[*mautrix.RespSync](t)(c.SyncRequest(ctxT(t), 0, "", "", false, event.PresenceOffline))
	ev := ephemeralOf(resp, roomID, event.EphemeralEventReceipt)
	out := map[string]string{}
	if ev == nil {
		return out
	}
	var content map[string]map[string]map[string]struct {
		ThreadID string `json:"thread_id"`
	}
	if err := json.Unmarshal(ev.Content.VeryRaw, &content); err != nil {
		t.Fatal(err)
	}
	for eventID, types := range content {
		for user, r := range types[typ] {
			if r.ThreadID == thread {
				out[user] = eventID
			}
		}
	}
	return out
}

// A receipt never moves back: one for an event older than the one the
// user's receipt (of that type and thread) names is ignored, and does not
// bring unread notifications back. m.read and m.read.private move on their
// own.
func TestReceiptsNeverMoveBack(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	roomID, first := sharedRoom(t, alice, bob)
	second := must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, roomID, "deux")).EventID
	third := must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, roomID, "trois")).EventID

	read := func(eventID id.EventID, typ event.ReceiptType, content any) {
		t.Helper()
		if err := bob.SendReceipt(ctx, roomID, eventID, typ, content); err != nil {
			t.Fatal(err)
		}
	}
	read(second, event.ReceiptTypeRead, nil)
	read(first, event.ReceiptTypeRead, nil) // older: ignored
	if got := receiptsOf(t, alice, roomID, "m.read", "")[bob.UserID.String()]; got != second.String() {
		t.Fatalf("bob's m.read names %s, want %s (the newer one)", got, second)
	}
	if got := unread(t, bob, roomID); got.NotificationCount != 1 {
		t.Fatalf("bob's unread after an older receipt: %+v, want 1 (the third message)", got)
	}
	read(third, event.ReceiptTypeRead, nil)
	if got := receiptsOf(t, alice, roomID, "m.read", "")[bob.UserID.String()]; got != third.String() {
		t.Fatalf("bob's m.read names %s, want %s", got, third)
	}

	// A private receipt behind the public one is a receipt of its own
	// type: it is stored.
	read(first, event.ReceiptTypeReadPrivate, nil)
	if got := receiptsOf(t, bob, roomID, "m.read.private", "")[bob.UserID.String()]; got != first.String() {
		t.Fatalf("bob's m.read.private names %s, want %s", got, first)
	}

	// Threaded receipts move back no more than unthreaded ones.
	main := map[string]any{"thread_id": "main"}
	read(third, event.ReceiptTypeRead, main)
	read(second, event.ReceiptTypeRead, main)
	if got := receiptsOf(t, alice, roomID, "m.read", "main")[bob.UserID.String()]; got != third.String() {
		t.Fatalf("bob's threaded m.read names %s, want %s", got, third)
	}
}
