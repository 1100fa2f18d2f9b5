package syncapi

import (
	"slices"
	"sync"
	"time"
)

// typingState is who types in which room, as this process learnt it from
// the output stream, and the sequence of the last typing message it
// applied (the typing part of the tokens it issues). Every process applies the same
// messages in the same order, so they agree on both.
type typingState struct {
	mu      sync.Mutex
	seq     int64
	rooms   map[string]*roomTyping
	pruneAt time.Time
}

type roomTyping struct {
	until   map[string]int64 // user → end of typing, Unix ms
	changed int64            // sequence of the last change
	idle    time.Time        // when the set last became empty
}

// forgetIdleRoom is how long a room keeps an empty typing set, so that a
// sync that saw someone typing is told they stopped.
const forgetIdleRoom = 5 * time.Minute

func newTypingState() *typingState {
	return &typingState{rooms: map[string]*roomTyping{}}
}

// apply records the typing message at seq. Only typing messages move the
// position, so that tokens change only when typing does.
func (t *typingState) apply(seq int64, m *OutputMessage) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq = max(t.seq, seq)
	now := time.Now()
	r := t.rooms[m.RoomID]
	if r == nil {
		r = &roomTyping{until: map[string]int64{}}
		t.rooms[m.RoomID] = r
	}
	if m.Typing {
		r.until[m.UserID] = m.UntilMS
	} else {
		delete(r.until, m.UserID)
	}
	r.changed = seq
	if len(r.until) == 0 {
		r.idle = now
	}
	t.prune(now)
}

// prune forgets rooms idle for long, at most once a minute. Called with mu.
func (t *typingState) prune(now time.Time) {
	if now.Before(t.pruneAt) {
		return
	}
	t.pruneAt = now.Add(time.Minute)
	for id, r := range t.rooms {
		if len(r.until) == 0 && now.Sub(r.idle) > forgetIdleRoom {
			delete(t.rooms, id)
		}
	}
}

// position is the sequence of the last applied message.
func (t *typingState) position() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seq
}

// typers lists the users typing in roomID now, sorted, and the sequence of
// the room's last change. Entries past their end are left out even when
// the message that ends them never came (its sender died).
func (t *typingState) typers(roomID string) (users []string, changed int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.rooms[roomID]
	if r == nil {
		return nil, 0
	}
	nowMS := time.Now().UnixMilli()
	for u, until := range r.until {
		if until > nowMS {
			users = append(users, u)
		}
	}
	slices.Sort(users)
	return users, r.changed
}

// endsAt is the end of userID's typing in roomID (0 if not typing).
func (t *typingState) endsAt(roomID, userID string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.rooms[roomID]; r != nil {
		return r.until[userID]
	}
	return 0
}
