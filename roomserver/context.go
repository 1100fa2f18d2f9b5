package roomserver

import (
	"context"
	"fmt"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

const (
	maxContextLimit = 100
	// timestampCandidates is how many events around a timestamp are tried
	// before answering that none is visible.
	timestampCandidates = 50
)

// queryContext serves /context: the event, up to limit/2 events before it
// and the rest after, each visible to the user and matching the filter,
// and the state at the last event returned. Positions, not tokens, go
// back: StartPos reads backwards before events_before, EndPos forwards
// after events_after, with /messages' meaning.
func (rs *Roomserver) queryContext(ctx context.Context, req *QueryContextRequest) (*QueryContextResponse, error) {
	room, err := rs.knownRoom(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	target, err := rs.visibleEvent(ctx, room, req.UserID, req.EventID)
	if err != nil {
		return nil, err
	}
	if target == nil {
		return nil, mxerr.NotFound("event %s not found", req.EventID)
	}
	limit := min(max(req.Limit, 0), maxContextLimit)
	nBefore := limit / 2
	nAfter := limit - nBefore
	resp := &QueryContextResponse{StartPos: target.pos - 1, EndPos: target.pos}

	before, err := rs.reader.storedRange(ctx, room, 0, target.pos-1, nBefore, true)
	if err != nil {
		return nil, err
	}
	if len(before) > 0 {
		resp.StartPos = before[len(before)-1].pos - 1
	}
	after, err := rs.reader.storedRange(ctx, room, target.pos, 1<<62, nAfter, false)
	if err != nil {
		return nil, err
	}
	events, err := rs.clientEvents(ctx, room, req.UserID, append([]storedEvent{*target}, slices.Concat(before, after)...))
	if err != nil {
		return nil, err
	}
	visible := map[string]bool{}
	for _, ev := range events {
		visible[ev.EventID] = true
	}
	// The end is the last event the user may see: state or events past it
	// are not theirs to read.
	for _, ev := range after {
		if visible[ev.eventID] {
			resp.EndPos = ev.pos
		}
	}
	f := req.Filter
	senders := map[string]bool{}
	for _, ev := range events {
		switch {
		case ev.EventID == target.eventID:
			resp.Event = ev
		case !f.matches(&ev):
			continue
		case posOf(before, ev.EventID) > 0:
			resp.EventsBefore = append(resp.EventsBefore, ev)
		default:
			resp.EventsAfter = append(resp.EventsAfter, ev)
		}
		senders[ev.Sender] = true
	}
	if resp.EventsBefore == nil {
		resp.EventsBefore = []ClientEvent{}
	}
	if resp.EventsAfter == nil {
		resp.EventsAfter = []ClientEvent{}
	}
	state, err := rs.reader.stateAtPos(ctx, room, resp.EndPos)
	if err != nil {
		return nil, err
	}
	resp.State, err = rs.reader.stateEvents(ctx, room, state, func(k stateKey) bool {
		return f == nil || !f.LazyLoadMembers || k.Type != spec.MRoomMember || senders[k.StateKey]
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func posOf(evs []storedEvent, eventID string) int64 {
	for _, ev := range evs {
		if ev.eventID == eventID {
			return ev.pos
		}
	}
	return 0
}

// matches applies the filter's type and sender lists (a nil filter keeps
// everything). Types end in "*" as prefixes, as in the spec's filters.
func (f *EventFilter) matches(ev *ClientEvent) bool {
	if f == nil {
		return true
	}
	if len(f.Types) > 0 && !matchesAny(f.Types, ev.Type) {
		return false
	}
	if matchesAny(f.NotTypes, ev.Type) {
		return false
	}
	if len(f.Senders) > 0 && !slices.Contains(f.Senders, ev.Sender) {
		return false
	}
	return !slices.Contains(f.NotSenders, ev.Sender)
}

func matchesAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if p == s || (len(p) > 0 && p[len(p)-1] == '*' && len(s) >= len(p)-1 && s[:len(p)-1] == p[:len(p)-1]) {
			return true
		}
	}
	return false
}

// timestampToEvent finds the event closest to a timestamp in the given
// direction among those the user may see.
func (rs *Roomserver) timestampToEvent(ctx context.Context, req *TimestampToEventRequest) (*TimestampToEventResponse, error) {
	room, err := rs.knownRoom(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	if _, err := rs.reader.readableUpTo(ctx, room, req.UserID); err != nil {
		return nil, err
	}
	query := eventSelect + `WHERE e.room_nid = $1 AND e.origin_server_ts >= $2 AND ` + timelineEvent + `
		ORDER BY e.origin_server_ts ASC, e.stream_pos ASC LIMIT $3`
	if req.Backwards {
		query = eventSelect + `WHERE e.room_nid = $1 AND e.origin_server_ts <= $2 AND ` + timelineEvent + `
		ORDER BY e.origin_server_ts DESC, e.stream_pos DESC LIMIT $3`
	}
	rows, err := rs.db.QueryContext(ctx, query, room.nid, req.TS, timestampCandidates)
	if err != nil {
		return nil, fmt.Errorf("events near %d: %w", req.TS, err)
	}
	stored, err := scanEvents(rows)
	if err != nil {
		return nil, err
	}
	for i := range stored {
		ok, err := rs.reader.canSee(ctx, room, req.UserID, &stored[i])
		if err != nil {
			return nil, err
		}
		if ok {
			ce, err := stored[i].clientEvent(room)
			if err != nil {
				return nil, err
			}
			return &TimestampToEventResponse{EventID: ce.EventID, OriginServerTS: ce.OriginServerTS}, nil
		}
	}
	return nil, mxerr.NotFound("no event found %s %d", map[bool]string{true: "before", false: "after"}[req.Backwards], req.TS)
}
