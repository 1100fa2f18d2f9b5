package syncapi

import (
	"context"
	"testing"

	"github.com/chappe-matrix/chappe/roomserver"
)

// publishLate stores a message and returns a function that publishes it
// on the output stream, with its PDU as the roomserver sends it: in
// between, the event exists but the push consumer has not seen it.
func (h *harness) publishLate(roomID, sender, body string) (eventID string, pos int64, publish func()) {
	h.t.Helper()
	out := h.messageOut(roomID, sender, body) // feed_test.go
	return out.EventID, out.Pos, func() {
		h.t.Helper()
		if _, err := roomserver.Output.Publish(context.Background(), h.bus, &out); err != nil {
			h.t.Fatal(err)
		}
		eventually(h.t, "the push consumer to count "+out.EventID, func() bool { return h.api.push.processed.Load() >= out.Pos })
	}
}

// A receipt that comes before the push consumer reaches its event (the
// consumer lags under load) leaves no unread count behind once it does.
func TestUnreadCountsAfterAnEarlyReceipt(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	h.member(roomA, bob, bob, "join")
	unreadOf := func() unreadNotifications {
		t.Helper()
		return h.sync(bobTok, nil).Rooms.Join[roomA].UnreadNotifications
	}

	eventID, _, publish := h.publishLate(roomA, alice, "one")
	h.mustDo("POST", bobTok, "/rooms/"+esc(roomA)+"/receipt/m.read/"+esc(eventID), ``)
	publish()
	if got := unreadOf(); got.NotificationCount != 0 {
		t.Fatalf("bob's unread after reading ahead of the consumer = %+v, want 0", got)
	}
	_, _, publish = h.publishLate(roomA, alice, "two")
	publish()
	if got := unreadOf(); got.NotificationCount != 1 {
		t.Fatalf("bob's unread after one more = %+v, want 1", got)
	}
}
