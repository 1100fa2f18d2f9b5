package syncapi

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sync"

	"github.com/chappe-matrix/chappe/roomserver"
)

// maxParallelRooms bounds how many rooms of one response are read from the
// database at once: an initial sync of a user in hundreds of rooms should
// not wait for each room in turn, nor take the whole pool.
const maxParallelRooms = 8

// syncBuilder builds one /sync response for the range (since, now].
type syncBuilder struct {
	reader roomserver.EventReader
	req    *syncRequest
	userID string
	now    int64
	limit  int
	format formatter

	mu   sync.Mutex // guards resp: rooms are built in parallel
	resp *syncResponse
}

// roomJob reads one room and adds it to the response.
type roomJob func(ctx context.Context) error

func (s *SyncAPI) buildSync(ctx context.Context, req *syncRequest, now int64) (*syncResponse, error) {
	b := &syncBuilder{
		reader: s.reader,
		req:    req,
		userID: req.device.UserID,
		now:    now,
		limit:  req.filter.timelineLimit(),
		format: newFormatter(req.device, false),
		resp:   newSyncResponse(),
	}
	var jobs []roomJob
	var err error
	if req.initial {
		jobs, err = b.initialJobs(ctx)
	} else {
		jobs, err = b.incrementalJobs(ctx)
	}
	if err != nil {
		return nil, err
	}
	if err := runParallel(ctx, maxParallelRooms, jobs); err != nil {
		return nil, err
	}
	b.resp.NextBatch = formatToken(now)
	return b.resp, nil
}

// initialJobs covers every room the user is in as of now, with rooms left
// earlier only when the filter asks for them.
func (b *syncBuilder) initialJobs(ctx context.Context) ([]roomJob, error) {
	memberships := []string{roomserver.MembershipJoin, roomserver.MembershipInvite, roomserver.MembershipKnock}
	if b.req.filter.Room.IncludeLeave {
		memberships = append(memberships, roomserver.MembershipLeave, roomserver.MembershipBan)
	}
	rooms, err := b.membershipsAt(ctx, memberships...)
	if err != nil {
		return nil, err
	}
	var jobs []roomJob
	for roomID, m := range rooms {
		if !b.req.filter.wantRoom(roomID) {
			continue
		}
		switch m.Membership {
		case roomserver.MembershipJoin:
			jobs = append(jobs, b.joined(roomID, 0, true))
		case roomserver.MembershipInvite:
			jobs = append(jobs, b.invited(roomID))
		case roomserver.MembershipKnock:
			jobs = append(jobs, b.knocked(roomID))
		default: // leave, ban
			// Pos is unknown for a room left while this request ran; it is
			// dropped from this archive and the next sync reports the room.
			if m.Pos > 0 {
				jobs = append(jobs, b.archived(roomID, m.Pos))
			}
		}
	}
	return jobs, nil
}

// incrementalJobs covers the rooms with news in (since, now]: the rooms
// joined throughout with new events, and the rooms whose membership changed.
func (b *syncBuilder) incrementalJobs(ctx context.Context) ([]roomJob, error) {
	list, err := b.reader.MembershipChanges(ctx, b.userID, b.req.since, b.now)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(x, y roomserver.MembershipChange) int { return cmp.Compare(x.Pos, y.Pos) })
	changed := map[string]roomChanges{}
	for _, c := range list {
		changed[c.RoomID] = append(changed[c.RoomID], c)
	}
	joined, err := b.membershipsAt(ctx, roomserver.MembershipJoin)
	if err != nil {
		return nil, err
	}
	var jobs []roomJob
	for roomID := range joined {
		if _, ok := changed[roomID]; !ok && b.req.filter.wantRoom(roomID) {
			jobs = append(jobs, b.joined(roomID, b.req.since, b.req.fullState))
		}
	}
	for roomID, c := range changed {
		if !b.req.filter.wantRoom(roomID) {
			continue
		}
		switch c.last().Membership {
		case roomserver.MembershipJoin:
			jobs = append(jobs, b.joinChanged(roomID, c))
		case roomserver.MembershipInvite:
			jobs = append(jobs, b.invited(roomID))
		case roomserver.MembershipKnock:
			jobs = append(jobs, b.knocked(roomID))
		default: // leave, ban
			jobs = append(jobs, b.leaveChanged(roomID, c))
		}
	}
	return jobs, nil
}

// membershipsAt lists the user's rooms whose membership as of now is one of
// memberships. RoomsOfUser reads the current memberships; rooms whose
// membership changed after now (a join or leave racing this request) are
// read again with MembershipAt, and their Pos is then unknown (0).
// MembershipChanges must be read after RoomsOfUser for that to hold.
func (b *syncBuilder) membershipsAt(ctx context.Context, memberships ...string) (map[string]roomserver.MembershipChange, error) {
	current, err := b.reader.RoomsOfUser(ctx, b.userID, memberships...)
	if err != nil {
		return nil, err
	}
	later, err := b.reader.MembershipChanges(ctx, b.userID, b.now, math.MaxInt64)
	if err != nil {
		return nil, err
	}
	rooms := make(map[string]roomserver.MembershipChange, len(current))
	for _, m := range current {
		rooms[m.RoomID] = m
	}
	redone := map[string]bool{}
	for _, c := range later {
		if redone[c.RoomID] {
			continue
		}
		redone[c.RoomID] = true
		m, err := b.reader.MembershipAt(ctx, c.RoomID, b.userID, b.now)
		if err != nil {
			return nil, err
		}
		delete(rooms, c.RoomID)
		if slices.Contains(memberships, m) {
			rooms[c.RoomID] = roomserver.MembershipChange{RoomID: c.RoomID, Membership: m}
		}
	}
	return rooms, nil
}

// roomChanges are the user's membership changes in one room during the
// sync's range, oldest first.
type roomChanges []roomserver.MembershipChange

func (c roomChanges) last() roomserver.MembershipChange { return c[len(c)-1] }

func (c roomChanges) has(pred func(m string) bool) bool {
	return slices.ContainsFunc(c, func(m roomserver.MembershipChange) bool { return pred(m.Membership) })
}

func isJoin(m string) bool    { return m == roomserver.MembershipJoin }
func isNotJoin(m string) bool { return m != roomserver.MembershipJoin }

// stayEnd is the position of the leave or ban that ended the user's last
// stay in the room: the first one after the range's last join, or after
// the range's start when it has no join.
func (c roomChanges) stayEnd() int64 {
	start := 0
	for i, m := range c {
		if isJoin(m.Membership) {
			start = i + 1
		}
	}
	for _, m := range c[start:] {
		if m.Membership == roomserver.MembershipLeave || m.Membership == roomserver.MembershipBan {
			return m.Pos
		}
	}
	return 0
}

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

func (b *syncBuilder) invited(roomID string) roomJob {
	return func(ctx context.Context) error {
		stripped, err := b.reader.InviteState(ctx, roomID, b.userID)
		if err != nil {
			return err
		}
		b.mu.Lock()
		b.resp.Rooms.Invite[roomID] = &invitedRoom{InviteState: strippedBatch{Events: nonNil(stripped)}}
		b.mu.Unlock()
		return nil
	}
}

// knocked sends the same stripped state as an invite: it is what the
// roomserver offers for a room the user is not in.
func (b *syncBuilder) knocked(roomID string) roomJob {
	return func(ctx context.Context) error {
		stripped, err := b.reader.InviteState(ctx, roomID, b.userID)
		if err != nil {
			return err
		}
		b.mu.Lock()
		b.resp.Rooms.Knock[roomID] = &knockedRoom{KnockState: strippedBatch{Events: nonNil(stripped)}}
		b.mu.Unlock()
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
