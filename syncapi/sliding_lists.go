package syncapi

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"

	"github.com/chappe-matrix/chappe/roomserver"
)

// slidingEntry is a room of the user's room list.
type slidingEntry struct {
	roomID     string
	membership string
	memPos     int64 // position of the user's membership event (0 if unknown)
	bump       int64
}

// roomList is the server's list of the user's rooms as of now, most
// recent activity first: joined, invited and knocked rooms, and the rooms
// this connection had while the user was in them (or invited, or
// knocking) and that the user has since left, been kicked or banned from:
// those are listed until the response that tells the client, with their
// leave or ban and the events up to it, as Synapse tells a room newly left;
// then they are dropped. Rooms left before the connection began are not
// listed.
func (sb *slidingBuilder) roomList(ctx context.Context) ([]slidingEntry, error) {
	b := &syncBuilder{reader: sb.api.reader, userID: sb.userID, now: sb.now}
	rooms, err := b.membershipsAt(ctx, roomserver.MembershipJoin, roomserver.MembershipInvite,
		roomserver.MembershipKnock, roomserver.MembershipLeave, roomserver.MembershipBan)
	if err != nil {
		return nil, err
	}
	entries := make([]slidingEntry, 0, len(rooms))
	for id, m := range rooms {
		if gone(m.Membership) {
			prev, sent := sb.prev.Rooms[id]
			if !sent || gone(prev.Membership) {
				continue
			}
		}
		entries = append(entries, slidingEntry{roomID: id, membership: m.Membership, memPos: m.Pos, bump: m.Pos})
	}
	var jobs []roomJob
	for i := range entries {
		if entries[i].membership != roomserver.MembershipJoin {
			continue
		}
		jobs = append(jobs, func(ctx context.Context) error {
			bump, err := sb.ss.facts.bump(ctx, entries[i].roomID, sb.now.Room)
			if err != nil {
				return err
			}
			entries[i].bump = max(bump, entries[i].memPos)
			return nil
		})
	}
	if err := runParallel(ctx, maxParallelRooms, jobs); err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(x, y slidingEntry) int {
		if c := cmp.Compare(y.bump, x.bump); c != 0 {
			return c
		}
		return cmp.Compare(x.roomID, y.roomID)
	})
	return entries, nil
}

// gone says whether a membership is one the user no longer has the room
// with: left (or kicked) or banned.
func gone(membership string) bool {
	return membership == roomserver.MembershipLeave || membership == roomserver.MembershipBan
}

// listFilter applies a list's filters.
type listFilter struct {
	sb     *slidingBuilder
	f      *slidingFilters
	spaces map[string]bool // children of the filter's spaces
}

func (sb *slidingBuilder) newListFilter(ctx context.Context, f *slidingFilters, joined map[string]bool) (*listFilter, error) {
	lf := &listFilter{sb: sb, f: f}
	if f == nil || f.Spaces == nil {
		return lf, nil
	}
	lf.spaces = map[string]bool{}
	for _, space := range f.Spaces {
		// Only spaces the user is joined to count, as the MSC says.
		if !joined[space] {
			continue
		}
		state, err := sb.api.reader.StateAt(ctx, space, sb.now.Room)
		if err != nil {
			return nil, err
		}
		for _, ev := range state {
			if ev.Type == "m.space.child" && ev.StateKey != nil && !emptyContent(ev.Content) {
				lf.spaces[*ev.StateKey] = true
			}
		}
	}
	return lf, nil
}

func emptyContent(c json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(c, &m) != nil || len(m) == 0
}

func (lf *listFilter) keep(ctx context.Context, e *slidingEntry) (bool, error) {
	f := lf.f
	if f == nil {
		return true, nil
	}
	if inv := f.invited(); inv != nil && *inv != (e.membership == roomserver.MembershipInvite) {
		return false, nil
	}
	if f.IsDM != nil && *f.IsDM != lf.sb.direct[e.roomID] {
		return false, nil
	}
	if lf.spaces != nil && !lf.spaces[e.roomID] {
		return false, nil
	}
	if f.RoomTypes != nil || f.NotRoomTypes != nil {
		// The stripped state of an invite is not read here: invited rooms
		// count as rooms without a type.
		typ := ""
		if e.membership == roomserver.MembershipJoin || e.membership == roomserver.MembershipLeave || e.membership == roomserver.MembershipBan {
			var err error
			if typ, err = lf.sb.ss.facts.roomType(ctx, e.roomID, lf.sb.now.Room); err != nil {
				return false, err
			}
		}
		if slices.ContainsFunc(f.NotRoomTypes, typeIs(typ)) {
			return false, nil
		}
		if f.RoomTypes != nil && !slices.ContainsFunc(f.RoomTypes, typeIs(typ)) {
			return false, nil
		}
	}
	if f.IsEncrypted != nil {
		enc, err := lf.sb.encrypted(ctx, e)
		if err != nil {
			return false, err
		}
		if enc != *f.IsEncrypted {
			return false, nil
		}
	}
	if f.Tags != nil || f.NotTags != nil {
		tags := lf.sb.tags[e.roomID]
		if slices.ContainsFunc(f.NotTags, func(t string) bool { return tags[t] }) {
			return false, nil
		}
		if f.Tags != nil && !slices.ContainsFunc(f.Tags, func(t string) bool { return tags[t] }) {
			return false, nil
		}
	}
	return true, nil
}

// typeIs matches a room type filter entry; null stands for "no type".
func typeIs(typ string) func(*string) bool {
	return func(want *string) bool {
		if want == nil {
			return typ == ""
		}
		return *want == typ
	}
}

// encrypted says whether a room has an m.room.encryption state event.
func (sb *slidingBuilder) encrypted(ctx context.Context, e *slidingEntry) (bool, error) {
	if e.membership != roomserver.MembershipJoin && e.membership != roomserver.MembershipLeave && e.membership != roomserver.MembershipBan {
		return false, nil
	}
	at := sb.now.Room
	if e.membership != roomserver.MembershipJoin && e.memPos > 0 {
		at = e.memPos
	}
	state, err := sb.api.reader.StateAt(ctx, e.roomID, at)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(state, func(ev roomserver.ClientEvent) bool { return ev.Type == "m.room.encryption" }), nil
}

// applyLists works out, for each list, its count and the rooms of its
// ranges; matched maps each room in a window to the lists it is in.
func (sb *slidingBuilder) applyLists(ctx context.Context, entries []slidingEntry) (matched map[string][]string, err error) {
	matched = map[string][]string{}
	joined := map[string]bool{}
	for _, e := range entries {
		if e.membership == roomserver.MembershipJoin {
			joined[e.roomID] = true
		}
	}
	names := make([]string, 0, len(sb.req.Lists))
	for name := range sb.req.Lists {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		l := sb.req.Lists[name]
		lf, err := sb.newListFilter(ctx, l.Filters, joined)
		if err != nil {
			return nil, err
		}
		var kept []string
		for i := range entries {
			ok, err := lf.keep(ctx, &entries[i])
			if err != nil {
				return nil, err
			}
			if ok {
				kept = append(kept, entries[i].roomID)
			}
		}
		sb.resp.Lists[name] = slidingListResult{Count: len(kept)}
		inWindow := func(i int) bool {
			if len(l.Ranges) == 0 {
				return true // no range: the whole filtered list
			}
			return slices.ContainsFunc(l.Ranges, func(r [2]int64) bool { return int64(i) >= r[0] && int64(i) <= r[1] })
		}
		for i, id := range kept {
			if inWindow(i) {
				matched[id] = append(matched[id], name)
			}
		}
	}
	return matched, nil
}
