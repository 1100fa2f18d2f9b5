package syncapi

import (
	"context"
	"slices"

	"github.com/chappe-matrix/chappe/roomserver"
)

// joinChanged handles a room where the user is joined at the end of the
// range after a membership change in it. A change of profile (join after
// join) is an ordinary incremental update; a new join, or a return after
// leaving, gets the full state, as the client's picture of the room is
// missing or stale.
func (b *syncBuilder) joinChanged(roomID string, c roomChanges) roomJob {
	return func(ctx context.Context) error {
		fresh := c.has(isNotJoin)
		if !fresh {
			prev, err := b.reader.MembershipAt(ctx, roomID, b.userID, b.req.since.Room)
			if err != nil {
				return err
			}
			fresh = prev != roomserver.MembershipJoin
		}
		if fresh {
			return b.joined(roomID, 0, c.last().Pos, true)(ctx)
		}
		return b.joined(roomID, b.req.since.Room, b.req.since.Room, b.req.fullState)(ctx)
	}
}

// leaveChanged handles a room the user left (or was banned from) during
// the range. The timeline stops where the user stopped being joined. A user
// who was never joined (a rejected invite, a withdrawn knock) is sent only
// the event that ended their membership, which is theirs to see.
func (b *syncBuilder) leaveChanged(roomID string, c roomChanges) roomJob {
	return func(ctx context.Context) error {
		if c.has(isJoin) {
			return b.left(ctx, roomID, 0, c.lastJoin(), c.stayEnd(), true)
		}
		prev, err := b.reader.MembershipAt(ctx, roomID, b.userID, b.req.since.Room)
		if err != nil {
			return err
		}
		if prev == roomserver.MembershipJoin {
			return b.left(ctx, roomID, b.req.since.Room, b.req.since.Room, c.stayEnd(), b.req.fullState)
		}
		end := c.last().Pos
		return b.left(ctx, roomID, end-1, end-1, end, false)
	}
}

// archived adds a room left before now to an initial sync that asked for
// left rooms, unless the user was never joined to it. When they joined is
// not known here: history visibility judges the whole timeline.
func (b *syncBuilder) archived(roomID string, leftAt int64) roomJob {
	return func(ctx context.Context) error {
		prev, err := b.reader.MembershipAt(ctx, roomID, b.userID, leftAt-1)
		if err != nil || prev != roomserver.MembershipJoin {
			return err
		}
		return b.left(ctx, roomID, 0, 0, leftAt, true)
	}
}

// joined adds roomID to rooms.join with its events in (from, now]; the
// user was joined throughout (joinedAfter, now] (0: not known). A room
// with nothing new is left out unless full is set (addExtras may still
// add it for its account data or ephemeral events).
func (b *syncBuilder) joined(roomID string, from, joinedAfter int64, full bool) roomJob {
	return func(ctx context.Context) error {
		tl, state, err := b.timeline(ctx, roomID, from, joinedAfter, b.now.Room, full)
		if err != nil {
			return err
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if from == 0 {
			b.fresh[roomID] = true
		}
		if !full && len(tl.Events) == 0 && !tl.Limited && len(state.Events) == 0 {
			return nil
		}
		b.resp.Rooms.Join[roomID] = newJoinedRoom(tl, state)
		return nil
	}
}

// left adds roomID to rooms.leave with its events in (from, to], to being
// the user's leave; they were joined throughout (joinedAfter, to).
func (b *syncBuilder) left(ctx context.Context, roomID string, from, joinedAfter, to int64, full bool) error {
	tl, state, err := b.timeline(ctx, roomID, from, joinedAfter, to, full)
	if err != nil {
		return err
	}
	room := &leftRoom{Timeline: tl, State: state, AccountData: emptyEventList()}
	b.mu.Lock()
	b.resp.Rooms.Leave[roomID] = room
	b.mu.Unlock()
	return nil
}

// invited adds roomID to rooms.invite, or to rooms.knock, with the
// stripped state the roomserver offers for a room the user is not in: the
// same for a knock as for an invite.
func (b *syncBuilder) invited(roomID string, knock bool) roomJob {
	return func(ctx context.Context) error {
		stripped, err := b.reader.InviteState(ctx, roomID, b.userID)
		if err != nil {
			return err
		}
		batch := strippedBatch{Events: nonNil(stripped)}
		b.mu.Lock()
		defer b.mu.Unlock()
		if knock {
			b.resp.Rooms.Knock[roomID] = &knockedRoom{KnockState: batch}
		} else {
			b.resp.Rooms.Invite[roomID] = &invitedRoom{InviteState: batch}
		}
		return nil
	}
}

// timeline reads roomID's latest events in (from, to] that pass the
// timeline filter and that the user may see (they were joined throughout
// (joinedAfter, to]), at most the filter's limit, oldest first, and the
// state the client needs before the first of them: all of it when full is
// set; otherwise (the client has the state at from) what changed in the
// events the limit, the filter or history visibility skipped, nothing when
// none were skipped. The state filter and lazy loading of members apply to
// that state.
func (b *syncBuilder) timeline(ctx context.Context, roomID string, from, joinedAfter, to int64, full bool) (timeline, stateBatch, error) {
	evs, limited, dropped, err := b.timelineEvents(ctx, roomID, from, joinedAfter, to)
	if err != nil {
		return timeline{}, stateBatch{}, err
	}
	tl := timeline{Events: b.format.stream(evs), Limited: limited, PrevBatch: formatToken(to)}
	if len(evs) > 0 {
		tl.PrevBatch = formatToken(evs[0].Pos - 1)
	}
	if b.req.stateAfter {
		return b.stateAfter(ctx, roomID, from, to, full, tl, evs)
	}
	sf := &b.req.filter.Room.State
	if !full && !limited && !dropped && !sf.LazyLoadMembers {
		return tl, stateBatch{Events: []roomserver.ClientEvent{}}, nil
	}
	at := roomserver.StateSelection{Pos: to}
	if len(evs) > 0 {
		at = roomserver.StateSelection{Pos: evs[0].Pos, Before: true}
	}
	state, err := b.roomState(ctx, roomID, at, from, full, limited || dropped, evs)
	if err != nil {
		return timeline{}, stateBatch{}, err
	}
	return tl, state, nil
}

// roomState reads the state a room's entry carries, at sel's point: all of
// it when full; otherwise, with delta, the entries that changed since from
// (the client has the state at from), and none without. With lazy loading
// of members, member events are the ones of the timeline's senders, whether
// the client may have them or not (the spec allows redundant members), and
// the syncing user's own when full or when it changed; others are not even
// read. The state filter applies last.
func (b *syncBuilder) roomState(ctx context.Context, roomID string, sel roomserver.StateSelection, from int64, full, delta bool, evs []roomserver.StreamEvent) (stateBatch, error) {
	sf := &b.req.filter.Room.State
	none := stateBatch{Events: []roomserver.ClientEvent{}}
	if !sf.wantRoom(roomID) {
		return none, nil
	}
	lazy := sf.LazyLoadMembers
	var want map[string]bool
	if lazy {
		want = make(map[string]bool, len(evs)+1)
		for _, ev := range evs {
			want[ev.Event.Sender] = true
		}
		if full {
			want[b.userID] = true
		}
		if !full && !delta && len(want) == 0 {
			return none, nil // no member to send, and no state change
		}
	}
	var lazyOnly map[string]bool // state keys of members that are not news
	sel.Delta, sel.Since = !full && delta, from
	sel.Keep = func(typ, stateKey string, changed bool) bool {
		if !sf.eventFilter.matches(typ, "") {
			return false // the filter drops the type whatever the sender
		}
		news := full || delta && changed
		if !lazy || typ != "m.room.member" {
			return news
		}
		if news && (want[stateKey] || stateKey == b.userID) {
			return true
		}
		if want[stateKey] {
			if lazyOnly == nil {
				lazyOnly = map[string]bool{}
			}
			lazyOnly[stateKey] = true
			return true
		}
		return false
	}
	state, err := b.reader.SelectState(ctx, roomID, sel)
	if err != nil {
		return stateBatch{}, err
	}
	state = slices.DeleteFunc(state, func(ev roomserver.ClientEvent) bool { return !sf.matches(&ev) })
	out := stateBatch{Events: b.format.state(state)}
	for _, ev := range state {
		if ev.Type == "m.room.member" && lazyOnly[*ev.StateKey] {
			if out.lazyOnly == nil {
				out.lazyOnly = map[string]bool{}
			}
			out.lazyOnly[ev.EventID] = true
		}
	}
	return out, nil
}

// timelineEvents reads the latest events of (from, to] that pass the
// timeline filter and that the user may see, oldest first (timelineRead).
func (b *syncBuilder) timelineEvents(ctx context.Context, roomID string, from, joinedAfter, to int64) (evs []roomserver.StreamEvent, limited, dropped bool, err error) {
	f := &b.req.filter.Room.Timeline
	if !f.wantRoom(roomID) {
		// No timeline for this room, but its state still changes.
		last, err := b.reader.Events(ctx, roomID, from, to, 1, true)
		return nil, false, len(last) > 0, err
	}
	tr := &timelineRead{reader: b.reader, history: b.history, roomID: roomID,
		from: from, to: to, joinedAfter: joinedAfter, limit: b.limit, page: b.limit + 1, match: f.matches}
	if f.filters() {
		tr.page = max(tr.page, 100)
	}
	return tr.run(ctx)
}

// changedSince keeps the events of state that are not in known. State
// entries are replaced, never removed, so this is the delta from known to
// state. (/sync itself asks the EventReader for the delta: roomState.)
func changedSince(state, known []roomserver.ClientEvent) []roomserver.ClientEvent {
	ids := make(map[string]struct{}, len(known))
	for _, ev := range known {
		ids[ev.EventID] = struct{}{}
	}
	return slices.DeleteFunc(state, func(ev roomserver.ClientEvent) bool {
		_, ok := ids[ev.EventID]
		return ok
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
