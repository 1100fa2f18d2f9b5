package syncapi

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chappe-matrix/chappe/roomserver"
)

// fakeFeed plays roomserver.CommitFeed.
type fakeFeed struct {
	mu        sync.Mutex
	followers []func([]roomserver.OutputEvent)
}

func (f *fakeFeed) FollowCommits(fn func([]roomserver.OutputEvent)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.followers = append(f.followers, fn)
}

// hand gives an event to the followers; nothing without a feed.
func (f *fakeFeed) hand(ev roomserver.OutputEvent) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fn := range f.followers {
		fn([]roomserver.OutputEvent{ev})
	}
}

// messageOut stores a message and returns it as the roomserver outputs it
// (with its PDU, which push rules read), without handing it anywhere.
func (h *harness) messageOut(roomID, sender, body string) roomserver.OutputEvent {
	h.t.Helper()
	se := roomserver.StreamEvent{Event: roomserver.ClientEvent{RoomID: roomID, Sender: sender, Type: "m.room.message",
		Content: mustJSON(map[string]string{"msgtype": "m.text", "body": body})}}
	se.Event.EventID = "$out" + body
	se.Event.OriginServerTS = time.Now().UnixMilli()
	pos := h.reader.add(se, "")
	pdu := mustJSON(map[string]any{"type": se.Event.Type, "sender": sender, "room_id": roomID,
		"content": se.Event.Content, "origin_server_ts": se.Event.OriginServerTS})
	return roomserver.OutputEvent{Pos: pos, RoomID: roomID, EventID: se.Event.EventID, Type: se.Event.Type, Sender: sender, Event: pdu}
}

func newFedHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessOf(t, &harness{feed: &fakeFeed{}})
}

// With the commit feed alone (nothing on the stream), a waiting sync wakes
// with the message and the unread count the message adds.
func TestCommitFeedWakesSyncWithCounts(t *testing.T) {
	h := newFedHarness(t)
	h.createRoom(roomA, alice, "Room")
	h.member(roomA, bob, bob, "join")
	since := h.sync(bobTok, nil).NextBatch

	done := h.startSync(bobTok, q("since", since, "timeout", "30000"))
	eventually(t, "bob's sync to wait", func() bool { return h.api.notifier.waiters(bob) == 1 })
	ev := h.messageOut(roomA, alice, "Bonjour Bob")
	h.feed.hand(ev)
	resp := receive(t, done)
	room := resp.Rooms.Join[roomA]
	if room == nil || len(room.Timeline.Events) != 1 || room.Timeline.Events[0].EventID != ev.EventID {
		t.Fatalf("bob's sync after the feed: %+v", resp.Rooms.Join)
	}
	if room.UnreadNotifications.NotificationCount != 1 {
		t.Fatalf("unread with the event = %+v, want 1", room.UnreadNotifications)
	}
}

// An event that both the feed and the stream bring is counted once; one
// that only the stream brings (the feed's queue was full, or the process
// restarted) is counted by the durable consumer.
func TestCommitFeedAndStreamCountOnce(t *testing.T) {
	h := newFedHarness(t)
	h.createRoom(roomA, alice, "Room")
	h.member(roomA, bob, bob, "join")

	both := h.messageOut(roomA, alice, "un")
	h.feed.hand(both)
	if _, err := roomserver.Output.Publish(context.Background(), h.bus, &both); err != nil {
		t.Fatal(err)
	}
	streamOnly := h.messageOut(roomA, alice, "deux")
	if _, err := roomserver.Output.Publish(context.Background(), h.bus, &streamOnly); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both messages counted", func() bool { return h.api.push.processed.Load() >= streamOnly.Pos })
	// The stream's copy of the first message has been skipped by now:
	// the consumer handles messages in order.
	eventually(t, "the stream's copy of the first message", func() bool {
		h.api.push.gate.mu.Lock()
		defer h.api.push.gate.mu.Unlock()
		_, waiting := h.api.push.gate.seen[both.Pos]
		return !waiting
	})
	if got := h.sync(bobTok, nil).Rooms.Join[roomA].UnreadNotifications; got.NotificationCount != 2 {
		t.Fatalf("bob's unread = %+v, want 2", got)
	}
}
