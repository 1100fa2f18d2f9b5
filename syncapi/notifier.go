package syncapi

import (
	"context"
	"fmt"
	"sync"

	"github.com/chappe-matrix/chappe/roomserver"
)

// notifier wakes the syncs waiting for news. It is fed by the roomserver's
// output stream and wakes a user's syncs only for events that concern the
// user: events of rooms where the user is joined, and membership events
// about the user (an invite to a room they are not in yet). It holds no
// timer and no loop: a waiting sync costs a channel until it is woken.
type notifier struct {
	reader  roomserver.EventReader
	isLocal func(userID string) bool

	mu sync.Mutex
	// members is room → its joined local users, for the rooms that had an
	// event since start-up: loaded with JoinedUsers on a room's first event,
	// then kept up to date from m.room.member events.
	members map[string]map[string]struct{}
	// latest is local user → position of the latest event that concerned
	// them, so that a sync that starts waiting after such an event was
	// handled does not miss it.
	latest    map[string]int64
	waiting   map[string]map[*waiter]struct{}
	processed int64 // position of the last event handled
}

// waiter is one waiting sync: it has seen every event up to pos.
type waiter struct {
	pos int64
	ch  chan struct{}
}

func newNotifier(reader roomserver.EventReader, isLocal func(string) bool) *notifier {
	return &notifier{
		reader:  reader,
		isLocal: isLocal,
		members: map[string]map[string]struct{}{},
		latest:  map[string]int64{},
		waiting: map[string]map[*waiter]struct{}{},
	}
}

// onEvent handles one output event; an error (the database unreachable)
// makes the bus retry the same event before any later one.
func (n *notifier) onEvent(ctx context.Context, _ uint64, ev *roomserver.OutputEvent) error {
	if err := n.loadRoom(ctx, ev.RoomID); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	members := n.members[ev.RoomID]
	// Everyone joined before the event hears of it, a user who leaves
	// included; the target of a membership event hears of it even when not
	// joined (an invite, a join).
	for userID := range members {
		n.notify(userID, ev.Pos)
	}
	if ev.Type == "m.room.member" && ev.StateKey != nil && n.isLocal(*ev.StateKey) {
		target := *ev.StateKey
		n.notify(target, ev.Pos)
		if ev.Membership == roomserver.MembershipJoin {
			members[target] = struct{}{}
		} else {
			delete(members, target)
		}
	}
	n.processed = max(n.processed, ev.Pos)
	return nil
}

// loadRoom reads the joined users of a room the notifier has not seen yet.
// Only the stream's handler calls it, one event at a time, so a room is
// never loaded twice. The database may already hold later events than the
// one being handled; replaying their membership changes afterwards is
// harmless, and the set ends up right.
func (n *notifier) loadRoom(ctx context.Context, roomID string) error {
	n.mu.Lock()
	_, known := n.members[roomID]
	n.mu.Unlock()
	if known {
		return nil
	}
	users, err := n.reader.JoinedUsers(ctx, roomID)
	if err != nil {
		return fmt.Errorf("joined users of %s: %w", roomID, err)
	}
	set := make(map[string]struct{}, len(users))
	for _, u := range users {
		if n.isLocal(u) {
			set[u] = struct{}{}
		}
	}
	n.mu.Lock()
	n.members[roomID] = set
	n.mu.Unlock()
	return nil
}

// notify records an event at pos for userID and wakes their syncs that
// have not seen it. Called with mu held.
func (n *notifier) notify(userID string, pos int64) {
	n.latest[userID] = max(n.latest[userID], pos)
	ws := n.waiting[userID]
	for w := range ws {
		if w.pos < pos {
			close(w.ch)
			delete(ws, w)
		}
	}
	if len(ws) == 0 {
		delete(n.waiting, userID)
	}
}

// wait registers a sync of userID that has seen every event up to pos. The
// channel is closed when an event after pos concerns the user, at once if
// such an event was handled before the call. stop unregisters the sync.
func (n *notifier) wait(userID string, pos int64) (woken <-chan struct{}, stop func()) {
	w := &waiter{pos: pos, ch: make(chan struct{})}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.latest[userID] > pos {
		close(w.ch)
		return w.ch, func() {}
	}
	if n.waiting[userID] == nil {
		n.waiting[userID] = map[*waiter]struct{}{}
	}
	n.waiting[userID][w] = struct{}{}
	return w.ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if ws := n.waiting[userID]; ws != nil {
			delete(ws, w)
			if len(ws) == 0 {
				delete(n.waiting, userID)
			}
		}
	}
}

// waiters counts userID's waiting syncs (for tests and metrics).
func (n *notifier) waiters(userID string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.waiting[userID])
}

// processedPos is the position of the last event handled.
func (n *notifier) processedPos() int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.processed
}
