package tests

import (
	"testing"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// Sending in a room reads it: the sender's unread count there drops to
// what came after their message. Counts are kept per room and thread as
// events are evaluated, so they follow many events and receipts.
func TestSendingReadsTheRoom(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	roomID, _ := sharedRoom(t, alice, bob)
	for _, text := range []string{"un", "deux", "trois"} {
		must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, roomID, text))
	}
	if got := unread(t, bob, roomID); got.NotificationCount != 4 {
		t.Fatalf("bob's unread = %+v, want 4", got)
	}
	must[*mautrix.RespSendEvent](t)(bob.SendText(ctx, roomID, "lu"))
	if got := unread(t, bob, roomID); got.NotificationCount != 0 {
		t.Fatalf("bob's unread after he spoke = %+v, want 0", got)
	}
	if got := unread(t, alice, roomID); got.NotificationCount != 1 {
		t.Fatalf("alice's unread = %+v, want 1 (bob's message)", got)
	}
	last := must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, roomID, "encore"))
	if got := unread(t, bob, roomID); got.NotificationCount != 1 {
		t.Fatalf("bob's unread after one more = %+v, want 1", got)
	}
	// Alice's message read her room: a receipt on her own event changes
	// nothing for her.
	if err := alice.SendReceipt(ctx, roomID, last.EventID, "m.read", nil); err != nil {
		t.Fatal(err)
	}
	if got := unread(t, alice, roomID); got.NotificationCount != 0 {
		t.Fatalf("alice's unread = %+v, want 0", got)
	}
}
