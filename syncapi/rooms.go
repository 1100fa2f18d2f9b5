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
			prev, err := b.reader.MembershipAt(ctx, roomID, b.userID, b.req.since)
			if err != nil {
				return err
			}
			fresh = prev != roomserver.MembershipJoin
		}
		if fresh {
			return b.joined(roomID, 0, true)(ctx)
		}
		return b.joined(roomID, b.req.since, b.req.fullState)(ctx)
	}
}

// leaveChanged handles a room the user left (or was banned from) during
// the range. The timeline stops where the user stopped being joined. A user
// who was never joined (a rejected invite, a withdrawn knock) is sent only
// the event that ended their membership.
func (b *syncBuilder) leaveChanged(roomID string, c roomChanges) roomJob {
	return func(ctx context.Context) error {
		if c.has(isJoin) {
			return b.left(ctx, roomID, 0, c.stayEnd(), true)
		}
		prev, err := b.reader.MembershipAt(ctx, roomID, b.userID, b.req.since)
		if err != nil {
			return err
		}
		if prev == roomserver.MembershipJoin {
			return b.left(ctx, roomID, b.req.since, c.stayEnd(), b.req.fullState)
		}
		end := c.last().Pos
		return b.left(ctx, roomID, end-1, end, false)
	}
}

// archived adds a room left before now to an initial sync that asked for
// left rooms, unless the user was never joined to it.
func (b *syncBuilder) archived(roomID string, leftAt int64) roomJob {
	return func(ctx context.Context) error {
		prev, err := b.reader.MembershipAt(ctx, roomID, b.userID, leftAt-1)
		if err != nil || prev != roomserver.MembershipJoin {
			return err
		}
		return b.left(ctx, roomID, 0, leftAt, true)
	}
}

// joined adds roomID to rooms.join with its events in (from, now]. A room
// with nothing new is left out unless full is set.
func (b *syncBuilder) joined(roomID string, from int64, full bool) roomJob {
	return func(ctx context.Context) error {
		tl, state, err := b.timeline(ctx, roomID, from, b.now, full)
		if err != nil {
			return err
		}
		if !full && len(tl.Events) == 0 && !tl.Limited {
			return nil
		}
		room := &joinedRoom{
			Timeline:    tl,
			State:       state,
			AccountData: emptyEventList(),
			Ephemeral:   emptyEventList(),
		}
		b.mu.Lock()
		b.resp.Rooms.Join[roomID] = room
		b.mu.Unlock()
		return nil
	}
}

// left adds roomID to rooms.leave with its events in (from, to], to being
// the user's leave.
func (b *syncBuilder) left(ctx context.Context, roomID string, from, to int64, full bool) error {
	tl, state, err := b.timeline(ctx, roomID, from, to, full)
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

// timeline reads roomID's latest events in (from, to], at most the filter's
// limit, oldest first, and the state the client needs before the first of
// them: all of it when full is set; otherwise (the client has the state at
// from) what changed in the events the limit skipped, nothing when none
// were skipped.
func (b *syncBuilder) timeline(ctx context.Context, roomID string, from, to int64, full bool) (timeline, stateBatch, error) {
	evs, err := b.reader.Events(ctx, roomID, from, to, b.limit+1, true)
	if err != nil {
		return timeline{}, stateBatch{}, err
	}
	limited := len(evs) > b.limit
	if limited {
		evs = evs[:b.limit]
	}
	slices.Reverse(evs)
	tl := timeline{Events: b.format.stream(evs), Limited: limited, PrevBatch: formatToken(to)}
	if len(evs) > 0 {
		tl.PrevBatch = formatToken(evs[0].Pos - 1)
	}
	state := stateBatch{Events: []roomserver.ClientEvent{}}
	if !full && !limited {
		return tl, state, nil
	}
	var before []roomserver.ClientEvent
	if len(evs) > 0 {
		before, err = b.reader.StateBefore(ctx, roomID, evs[0].Pos)
	} else {
		before, err = b.reader.StateAt(ctx, roomID, to)
	}
	if err != nil {
		return timeline{}, stateBatch{}, err
	}
	if !full {
		known, err := b.reader.StateAt(ctx, roomID, from)
		if err != nil {
			return timeline{}, stateBatch{}, err
		}
		before = changedSince(before, known)
	}
	state.Events = b.format.state(before)
	return tl, state, nil
}

// changedSince keeps the events of state that are not in known. State
// entries are replaced, never removed, so this is the delta from known to
// state.
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
