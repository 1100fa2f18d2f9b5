package syncapi

import (
	"context"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/chappe-matrix/chappe/roomserver"
)

// startSync runs a /sync in the background and returns its result channel.
func (h *harness) startSync(token string, params url.Values) <-chan *syncResponse {
	done := make(chan *syncResponse, 1)
	go func() { done <- h.sync(token, params) }()
	return done
}

func receive(t *testing.T, done <-chan *syncResponse) *syncResponse {
	t.Helper()
	select {
	case resp := <-done:
		return resp
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting sync did not return")
		return nil
	}
}

func TestLongPollWakesOnEventInJoinedRoom(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	h.member(roomA, bob, bob, "join")
	since := h.sync(bobTok, nil).NextBatch

	done := h.startSync(bobTok, q("since", since, "timeout", "30000"))
	eventually(t, "bob's sync to wait", func() bool { return h.api.notifier.waiters(bob) == 1 })
	h.message(roomA, alice, "Bonjour Bob")
	resp := receive(t, done)
	if got := bodies(resp.Rooms.Join[roomA].Timeline.Events); !slices.Equal(got, []string{"Bonjour Bob"}) {
		t.Fatalf("timeline = %v", got)
	}
	if h.api.notifier.waiters(bob) != 0 {
		t.Error("the woken sync is still registered")
	}
}

func TestLongPollWakesOnInvite(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	since := h.sync(bobTok, nil).NextBatch

	done := h.startSync(bobTok, q("since", since, "timeout", "30000"))
	eventually(t, "bob's sync to wait", func() bool { return h.api.notifier.waiters(bob) == 1 })
	h.member(roomA, alice, bob, "invite")
	if _, ok := receive(t, done).Rooms.Invite[roomA]; !ok {
		t.Fatal("the invite did not reach the waiting sync")
	}
}

// An event in a room Bob is not in leaves his sync waiting until its
// timeout, and the answer is empty.
func TestLongPollIgnoresOtherRooms(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	h.member(roomA, bob, bob, "join")
	h.createRoom("!carol:test", carol, "Carol's")
	since := h.sync(bobTok, nil).NextBatch

	done := h.startSync(bobTok, q("since", since, "timeout", "1000"))
	eventually(t, "bob's sync to wait", func() bool { return h.api.notifier.waiters(bob) == 1 })
	pos := h.message("!carol:test", carol, "not for bob")
	eventually(t, "the notifier to handle carol's message", func() bool { return h.api.notifier.processedPos() >= pos })
	if h.api.notifier.waiters(bob) != 1 {
		t.Fatal("carol's message woke bob's sync")
	}
	if resp := receive(t, done); !resp.empty() {
		t.Fatalf("bob got %+v", resp.Rooms)
	}
}

// An event the filter drops wakes the sync, which finds nothing and waits
// again rather than answering empty.
func TestLongPollKeepsWaitingAfterFilteredEvent(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "A")
	h.createRoom("!b:test", alice, "B")
	filter := `{"room":{"not_rooms":["!b:test"]}}`
	since := h.sync(aliceTok, q("filter", filter)).NextBatch

	done := h.startSync(aliceTok, q("since", since, "timeout", "30000", "filter", filter))
	eventually(t, "alice's sync to wait", func() bool { return h.api.notifier.waiters(alice) == 1 })
	pos := h.message("!b:test", alice, "filtered out")
	eventually(t, "the notifier to handle the filtered event", func() bool { return h.api.notifier.processedPos() >= pos })
	eventually(t, "alice's sync to wait again", func() bool { return h.api.notifier.waiters(alice) == 1 })
	h.message(roomA, alice, "wanted")
	resp := receive(t, done)
	if got := bodies(resp.Rooms.Join[roomA].Timeline.Events); !slices.Equal(got, []string{"wanted"}) || len(resp.Rooms.Join) != 1 {
		t.Fatalf("join = %v", resp.Rooms.Join)
	}
}

// Close lets waiting syncs answer at once.
func TestCloseEndsWaitingSyncs(t *testing.T) {
	h := newHarness(t)
	h.createRoom(roomA, alice, "Room")
	since := h.sync(aliceTok, nil).NextBatch
	done := h.startSync(aliceTok, q("since", since, "timeout", "60000"))
	eventually(t, "alice's sync to wait", func() bool { return h.api.notifier.waiters(alice) == 1 })
	h.api.Close()
	if resp := receive(t, done); !resp.empty() {
		t.Fatalf("got %+v", resp.Rooms)
	}
}

// The race the notifier guards against: the event is handled after the
// sync read the position but before it registered.
func TestNotifierRemembersEventsBeforeWait(t *testing.T) {
	reader := &fakeReader{}
	n := newNotifier(reader, localTo("test"))
	ctx := context.Background()
	key := bob
	reader.add(roomserver.StreamEvent{Event: roomserver.ClientEvent{RoomID: roomA, Type: "m.room.member", StateKey: &key,
		Content: mustJSON(map[string]string{"membership": "join"})}}, "join")
	msgPos := reader.add(roomserver.StreamEvent{Event: roomserver.ClientEvent{RoomID: roomA, Type: "m.room.message"}}, "")
	if err := n.onEvent(ctx, 0, &roomserver.OutputEvent{Pos: msgPos, RoomID: roomA, Type: "m.room.message"}); err != nil {
		t.Fatal(err)
	}

	woken, stop := n.wait(bob, streamPos{Room: msgPos - 1}) // read the position before the message
	defer stop()
	select {
	case <-woken:
	default:
		t.Fatal("a sync that has not seen the message was not woken")
	}
	upToDate, stop2 := n.wait(bob, streamPos{Room: msgPos})
	select {
	case <-upToDate:
		t.Fatal("a sync that has seen the message was woken")
	default:
	}
	stop2()
	if n.waiters(bob) != 0 {
		t.Error("stop did not unregister")
	}
	// Remote users are not tracked.
	remote := "@eve:elsewhere"
	if err := n.onEvent(ctx, 0, &roomserver.OutputEvent{Pos: msgPos + 1, RoomID: roomA, Type: "m.room.member", StateKey: &remote, Membership: "join"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.members[roomA][remote]; ok {
		t.Error("a remote user is tracked")
	}
}
