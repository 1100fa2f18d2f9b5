package syncapi

import (
	"context"
	"encoding/json"
	"slices"
	"sync"

	"github.com/chappe-matrix/chappe/roomserver"
)

// fakeReader is an in-memory roomserver.EventReader. Events are kept in
// stream order (position i+1 at index i) and everything else is derived
// from them, the way the roomserver's tables are.
type fakeReader struct {
	mu     sync.Mutex
	events []fakeEvent
}

type fakeEvent struct {
	roomserver.StreamEvent
	membership string // for m.room.member
}

var _ roomserver.EventReader = (*fakeReader)(nil)

// add stores an event and returns its position.
func (f *fakeReader) add(se roomserver.StreamEvent, membership string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	se.Pos = int64(len(f.events) + 1)
	f.events = append(f.events, fakeEvent{StreamEvent: se, membership: membership})
	return se.Pos
}

func (f *fakeReader) MaxPos(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.events)), nil
}

// memberships returns userID's latest member event per room, up to pos.
func (f *fakeReader) memberships(userID string, pos int64) map[string]fakeEvent {
	out := map[string]fakeEvent{}
	for _, ev := range f.events {
		if ev.Pos > pos {
			break
		}
		if ev.Event.Type == "m.room.member" && ev.Event.StateKey != nil && *ev.Event.StateKey == userID {
			out[ev.Event.RoomID] = ev
		}
	}
	return out
}

func (f *fakeReader) RoomsOfUser(_ context.Context, userID string, memberships ...string) ([]roomserver.MembershipChange, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []roomserver.MembershipChange
	for roomID, ev := range f.memberships(userID, int64(len(f.events))) {
		if slices.Contains(memberships, ev.membership) {
			out = append(out, roomserver.MembershipChange{RoomID: roomID, Membership: ev.membership, Pos: ev.Pos, EventID: ev.Event.EventID})
		}
	}
	return out, nil
}

func (f *fakeReader) MembershipChanges(_ context.Context, userID string, from, to int64) ([]roomserver.MembershipChange, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []roomserver.MembershipChange
	for _, ev := range f.events {
		if ev.Pos > from && ev.Pos <= to && ev.Event.Type == "m.room.member" && *ev.Event.StateKey == userID {
			out = append(out, roomserver.MembershipChange{RoomID: ev.Event.RoomID, Membership: ev.membership, Pos: ev.Pos, EventID: ev.Event.EventID})
		}
	}
	return out, nil
}

func (f *fakeReader) MembershipAt(_ context.Context, roomID, userID string, pos int64) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.memberships(userID, pos)[roomID].membership, nil
}

func (f *fakeReader) Events(_ context.Context, roomID string, from, to int64, limit int, backwards bool) ([]roomserver.StreamEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []roomserver.StreamEvent
	for _, ev := range f.events {
		if ev.Event.RoomID == roomID && ev.Pos > from && ev.Pos <= to {
			out = append(out, ev.StreamEvent)
		}
	}
	if backwards {
		slices.Reverse(out)
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (f *fakeReader) RoomsWithEvents(_ context.Context, from, to int64) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ev := range f.events {
		if ev.Pos > from && ev.Pos <= to && !slices.Contains(out, ev.Event.RoomID) {
			out = append(out, ev.Event.RoomID)
		}
	}
	return out, nil
}

// state replays roomID's state events with a position up to pos.
func (f *fakeReader) state(roomID string, pos int64) []roomserver.ClientEvent {
	type key struct{ typ, stateKey string }
	index := map[key]int{}
	var out []roomserver.ClientEvent
	for _, ev := range f.events {
		if ev.Pos > pos {
			break
		}
		if ev.Event.RoomID != roomID || ev.Event.StateKey == nil {
			continue
		}
		k := key{ev.Event.Type, *ev.Event.StateKey}
		if i, ok := index[k]; ok {
			out[i] = ev.Event
		} else {
			index[k] = len(out)
			out = append(out, ev.Event)
		}
	}
	return out
}

func (f *fakeReader) StateAt(_ context.Context, roomID string, pos int64) ([]roomserver.ClientEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state(roomID, pos), nil
}

func (f *fakeReader) StateBefore(_ context.Context, roomID string, pos int64) ([]roomserver.ClientEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state(roomID, pos-1), nil
}

func (f *fakeReader) SelectState(_ context.Context, roomID string, sel roomserver.StateSelection) ([]roomserver.ClientEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pos := sel.Pos
	if sel.Before {
		pos--
	}
	var known []roomserver.ClientEvent
	if sel.Delta {
		known = f.state(roomID, sel.Since)
	}
	var out []roomserver.ClientEvent
	for _, ev := range f.state(roomID, pos) {
		changed := !slices.ContainsFunc(known, func(k roomserver.ClientEvent) bool { return k.EventID == ev.EventID })
		if sel.Keep == nil && changed || sel.Keep != nil && sel.Keep(ev.Type, *ev.StateKey, changed) {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (f *fakeReader) RoomMates(_ context.Context, userID string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := int64(len(f.events))
	seen := map[string]bool{}
	var out []string
	for roomID, m := range f.memberships(userID, end) {
		if m.membership != roomserver.MembershipJoin {
			continue
		}
		for _, ev := range f.state(roomID, end) {
			if ev.Type == "m.room.member" && membershipOf(ev) == roomserver.MembershipJoin && !seen[*ev.StateKey] {
				seen[*ev.StateKey] = true
				out = append(out, *ev.StateKey)
			}
		}
	}
	return out, nil
}

func (f *fakeReader) JoinedUsers(_ context.Context, roomID string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ev := range f.state(roomID, int64(len(f.events))) {
		if ev.Type == "m.room.member" && membershipOf(ev) == roomserver.MembershipJoin {
			out = append(out, *ev.StateKey)
		}
	}
	return out, nil
}

func (f *fakeReader) InviteState(_ context.Context, roomID, userID string) ([]json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []json.RawMessage
	for _, ev := range f.state(roomID, int64(len(f.events))) {
		switch {
		case ev.Type == "m.room.create", ev.Type == "m.room.name", ev.Type == "m.room.join_rules",
			ev.Type == "m.room.member" && *ev.StateKey == userID:
			stripped, _ := json.Marshal(map[string]any{
				"type": ev.Type, "state_key": *ev.StateKey, "sender": ev.Sender, "content": ev.Content,
			})
			out = append(out, stripped)
		}
	}
	return out, nil
}

func membershipOf(ev roomserver.ClientEvent) string {
	var c struct {
		Membership string `json:"membership"`
	}
	_ = json.Unmarshal(ev.Content, &c)
	return c.Membership
}

// eventAt finds an event of roomID by ID, with its stream position.
func (f *fakeReader) eventAt(roomID, eventID string) (roomserver.ClientEvent, int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range f.events {
		if ev.Event.RoomID == roomID && ev.Event.EventID == eventID {
			return ev.Event, ev.Pos, true
		}
	}
	return roomserver.ClientEvent{}, 0, false
}
