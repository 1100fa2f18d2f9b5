package syncapi

import (
	"context"
	"fmt"
	"sync"

	"github.com/chappe-matrix/chappe/roomserver"
)

// notifier wakes the syncs waiting for news. It is fed by the roomserver's
// output stream and by syncapi's own (onOutput, below), and wakes a user's
// syncs only for what concerns the user: events of rooms where the user is
// joined, membership events about the user (an invite to a room they are
// not in yet), their own account data, receipts and typing in their rooms,
// presence of users who share a room with them. It holds no timer and no
// loop: a waiting sync costs a channel until it is woken.
type notifier struct {
	reader  roomserver.EventReader
	isLocal func(userID string) bool
	typing  *typingState

	mu sync.Mutex
	// members is room → its joined local users, for the rooms that had an
	// event since start-up: loaded with JoinedUsers on a room's first event,
	// then kept up to date from m.room.member events.
	members map[string]map[string]struct{}
	// latest is local user → positions of the latest changes that
	// concerned them, so that a sync that starts waiting after such a
	// change was handled does not miss it.
	latest    map[string]streamPos
	waiting   map[string]map[*waiter]struct{}
	processed int64 // position of the last room event handled
}

// waiter is one waiting sync: it has seen everything up to pos.
type waiter struct {
	pos streamPos
	ch  chan struct{}
}

func newNotifier(reader roomserver.EventReader, isLocal func(string) bool) *notifier {
	return &notifier{
		reader:  reader,
		isLocal: isLocal,
		typing:  newTypingState(),
		members: map[string]map[string]struct{}{},
		latest:  map[string]streamPos{},
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
	at := streamPos{Room: ev.Pos}
	for userID := range members {
		n.notify(userID, at)
	}
	if ev.Type == "m.room.member" && ev.StateKey != nil && n.isLocal(*ev.StateKey) {
		target := *ev.StateKey
		n.notify(target, at)
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
// The database may already hold later events than the one being handled;
// replaying their membership changes afterwards is harmless, and the set
// ends up right. Both streams' handlers load rooms: the first set stored
// wins, as the room events handler may have updated it since.
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
	if _, known := n.members[roomID]; !known {
		n.members[roomID] = set
	}
	n.mu.Unlock()
	return nil
}

// notify records a change at pos for userID and wakes their syncs that
// have not seen it. pos is zero in the streams the change is not in.
// Called with mu held.
func (n *notifier) notify(userID string, pos streamPos) {
	n.latest[userID] = n.latest[userID].union(pos)
	ws := n.waiting[userID]
	for w := range ws {
		if pos.after(w.pos) {
			close(w.ch)
			delete(ws, w)
		}
	}
	if len(ws) == 0 {
		delete(n.waiting, userID)
	}
}

// wait registers a sync of userID that has seen everything up to pos. The
// channel is closed when a change after pos concerns the user, at once if
// such a change was handled before the call. stop unregisters the sync.
func (n *notifier) wait(userID string, pos streamPos) (woken <-chan struct{}, stop func()) {
	w := &waiter{pos: pos, ch: make(chan struct{})}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.latest[userID].after(pos) {
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
