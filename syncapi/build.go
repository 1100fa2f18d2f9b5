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

// activeRoomsSpan is the widest range of room events for which an
// incremental sync first asks which rooms had events (RoomsWithEvents).
const activeRoomsSpan = 10000

// syncBuilder builds one /sync response for the range (since, now].
type syncBuilder struct {
	api    *SyncAPI
	reader roomserver.EventReader
	req    *syncRequest
	userID string
	now    streamPos
	limit  int
	format formatter

	// joinedNow are the rooms (wanted by the filter) where the user is
	// joined as of now: they get account data and ephemeral events.
	joinedNow map[string]bool
	// history leaves out of the timelines what the user may not see.
	history *historyFilter

	mu    sync.Mutex // guards resp and fresh: rooms are built in parallel
	resp  *syncResponse
	fresh map[string]bool // rooms sent from their start: initial or new join
}

// roomJob reads one room and adds it to the response.
type roomJob func(ctx context.Context) error

func (s *SyncAPI) buildSync(ctx context.Context, req *syncRequest, now streamPos) (*syncResponse, error) {
	b := &syncBuilder{
		api:       s,
		reader:    s.reader,
		req:       req,
		userID:    req.device.UserID,
		now:       now,
		limit:     req.filter.timelineLimit(),
		format:    newFormatter(req.device, false),
		resp:      newSyncResponse(),
		joinedNow: map[string]bool{},
		history:   newHistoryFilter(s.reader, req.device.UserID),
		fresh:     map[string]bool{},
	}
	b.resp.NextBatch = now.String()
	var jobs []roomJob
	var err error
	switch {
	case !req.initial && !req.fullState && !now.after(req.since):
		// Nothing at all was stored since the client's token: no query.
		return b.resp, nil
	case req.initial:
		jobs, err = b.initialJobs(ctx)
	case !req.fullState && now.Room <= req.since.Room:
		// No room event: only account data, receipts, typing or presence.
		err = b.loadJoined(ctx)
	default:
		jobs, err = b.incrementalJobs(ctx)
	}
	if err != nil {
		return nil, err
	}
	// Presence reads the user's room mates in one query of its own: it
	// runs beside the rooms rather than after them.
	jobs = append([]roomJob{b.presence}, jobs...)
	if err := runParallel(ctx, maxParallelRooms, jobs); err != nil {
		return nil, err
	}
	if err := b.addExtras(ctx); err != nil {
		return nil, err
	}
	if req.stateAfter {
		b.resp.moveStateAfter()
	}
	if err := b.addPushData(ctx); err != nil {
		return nil, err
	}
	return b.resp, nil
}

// loadJoined fills joinedNow.
func (b *syncBuilder) loadJoined(ctx context.Context) error {
	joined, err := b.membershipsAt(ctx, roomserver.MembershipJoin)
	if err != nil {
		return err
	}
	for roomID := range joined {
		if b.req.filter.wantRoom(roomID) {
			b.joinedNow[roomID] = true
		}
	}
	return nil
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
			b.joinedNow[roomID] = true
			b.history.consider(roomID)
			// m.Pos is the user's join (0 when unknown).
			jobs = append(jobs, b.joined(roomID, 0, m.Pos, true))
		case roomserver.MembershipInvite:
			jobs = append(jobs, b.invited(roomID, false))
		case roomserver.MembershipKnock:
			jobs = append(jobs, b.invited(roomID, true))
		default: // leave, ban
			// Pos is unknown for a room left while this request ran; it is
			// dropped from this archive and the next sync reports the room.
			if m.Pos > 0 {
				b.history.consider(roomID)
				jobs = append(jobs, b.archived(roomID, m.Pos))
			}
		}
	}
	return jobs, nil
}

// incrementalJobs covers the rooms with news in (since, now]: the rooms
// joined throughout with new events, and the rooms whose membership changed.
func (b *syncBuilder) incrementalJobs(ctx context.Context) ([]roomJob, error) {
	list, err := b.reader.MembershipChanges(ctx, b.userID, b.req.since.Room, b.now.Room)
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
	// A room without events in the range has nothing to send but its
	// extras (addExtras): a user in hundreds of rooms woken by one event
	// then reads one room, not all of them. Past activeRoomsSpan events,
	// every room is read, as that one query would cost more.
	var active map[string]bool
	if !b.req.fullState && b.now.Room-b.req.since.Room <= activeRoomsSpan {
		ids, err := b.reader.RoomsWithEvents(ctx, b.req.since.Room, b.now.Room)
		if err != nil {
			return nil, err
		}
		active = make(map[string]bool, len(ids))
		for _, id := range ids {
			active[id] = true
		}
	}
	var jobs []roomJob
	for roomID := range joined {
		if !b.req.filter.wantRoom(roomID) {
			continue
		}
		b.joinedNow[roomID] = true
		if _, ok := changed[roomID]; !ok && (active == nil || active[roomID]) {
			// Joined throughout the range: every event of it is theirs.
			jobs = append(jobs, b.joined(roomID, b.req.since.Room, b.req.since.Room, b.req.fullState))
		}
	}
	for roomID, c := range changed {
		if !b.req.filter.wantRoom(roomID) {
			continue
		}
		switch c.last().Membership {
		case roomserver.MembershipJoin:
			b.joinedNow[roomID] = true
			b.history.consider(roomID)
			jobs = append(jobs, b.joinChanged(roomID, c))
		case roomserver.MembershipInvite:
			jobs = append(jobs, b.invited(roomID, false))
		case roomserver.MembershipKnock:
			jobs = append(jobs, b.invited(roomID, true))
		default: // leave, ban
			b.history.consider(roomID)
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
	later, err := b.reader.MembershipChanges(ctx, b.userID, b.now.Room, math.MaxInt64)
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
		m, err := b.reader.MembershipAt(ctx, c.RoomID, b.userID, b.now.Room)
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

// lastJoin is the position of the range's last join (0: none).
func (c roomChanges) lastJoin() int64 {
	for i := len(c) - 1; i >= 0; i-- {
		if isJoin(c[i].Membership) {
			return c[i].Pos
		}
	}
	return 0
}

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
