package syncapi

import (
	"context"
	"slices"
	"strconv"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
)

const (
	defaultMessagesLimit = 10
	maxMessagesLimit     = 1000
)

// messagesRequest is a parsed /messages request. Positions follow the
// tokens' meaning: from and to are "after the event at this position".
type messagesRequest struct {
	roomID    string
	backwards bool
	from      *int64 // nil: the end (backwards) or the start (forwards)
	fromToken string
	to        *int64
	limit     int
	filter    *roomEventFilter
}

// parseMessagesRequest checks every parameter before the room is looked
// at, so a bad request is told so whether or not the user is in the room.
func parseMessagesRequest(req *httputil.Request) (*messagesRequest, error) {
	q := req.URL.Query()
	mr := &messagesRequest{roomID: req.PathValue("roomId"), limit: defaultMessagesLimit}
	if !mxid.RoomID(mr.roomID) {
		return nil, mxerr.InvalidParam("%q is not a room ID", mr.roomID)
	}
	backwards, err := httputil.Direction(q, "")
	if err != nil {
		return nil, err
	}
	mr.backwards = backwards
	if v := q.Get("from"); v != "" {
		pos, err := parseToken("from", v)
		if err != nil {
			return nil, err
		}
		mr.from, mr.fromToken = &pos, v
	}
	if v := q.Get("to"); v != "" {
		pos, err := parseToken("to", v)
		if err != nil {
			return nil, err
		}
		mr.to = &pos
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, mxerr.InvalidParam("limit: %q is not a positive number", v)
		}
		if n > 0 {
			mr.limit = min(n, maxMessagesLimit)
		}
	}
	f, err := parseRoomEventFilter(q.Get("filter"))
	if err != nil {
		return nil, err
	}
	mr.filter = f
	return mr, nil
}

// messages serves GET /rooms/{roomId}/messages.
func (s *SyncAPI) messages(req *httputil.Request) (any, error) {
	mr, err := parseMessagesRequest(req)
	if err != nil {
		return nil, err
	}
	ctx := req.Context()
	now, err := s.reader.MaxPos(ctx)
	if err != nil {
		return nil, err
	}
	upper, peeking, err := s.messagesUpTo(ctx, mr.roomID, req.Device.UserID, now)
	if err != nil {
		return nil, err
	}
	// The range (lo, hi] to read, clamped to what the user may read.
	var lo, hi int64
	if mr.backwards {
		hi = upper
		if mr.from != nil {
			hi = min(*mr.from, upper)
		}
		if mr.to != nil {
			lo = *mr.to
		}
	} else {
		hi = upper
		if mr.from != nil {
			lo = *mr.from
		}
		if mr.to != nil {
			hi = min(*mr.to, upper)
		}
	}
	resp := &messagesResponse{Start: mr.fromToken, Chunk: []roomserver.ClientEvent{}}
	if mr.from == nil {
		resp.Start = formatToken(hi)
		if !mr.backwards {
			resp.Start = formatToken(lo)
		}
	}
	if hi <= lo {
		return resp, nil
	}
	page, err := s.readPage(ctx, mr, req.Device.UserID, lo, hi, upper, peeking)
	if err != nil {
		return nil, err
	}
	evs := page.events
	resp.End = page.end
	// The filter applies after the limit: a chunk may come back short, or
	// empty with an end token, which the spec allows.
	evs = slices.DeleteFunc(evs, func(ev roomserver.StreamEvent) bool { return !mr.filter.matches(&ev.Event) })
	resp.Chunk = newFormatter(req.Device, true).stream(evs)
	if mr.filter.LazyLoadMembers && len(evs) > 0 {
		members, err := s.senderMembers(ctx, mr.roomID, evs)
		if err != nil {
			return nil, err
		}
		resp.State = newFormatter(req.Device, true).state(members)
	}
	return resp, nil
}

// senderMembers are the member events of the chunk's senders, in the state
// after the chunk's first event (as Synapse does). Redundant members are
// sent every time, which the spec allows.
func (s *SyncAPI) senderMembers(ctx context.Context, roomID string, evs []roomserver.StreamEvent) ([]roomserver.ClientEvent, error) {
	senders := map[string]bool{}
	for _, ev := range evs {
		senders[ev.Event.Sender] = true
	}
	state, err := s.reader.StateAt(ctx, roomID, evs[0].Pos)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(state, func(ev roomserver.ClientEvent) bool {
		return ev.Type != "m.room.member" || ev.StateKey == nil || !senders[*ev.StateKey]
	}), nil
}

// readableUpTo is the last position of roomID the user may read: now while
// joined, the leave (or ban) that ended their stay once they are out. A
// user who is not joined and was not joined right before their current
// leave or ban (never joined, invited only, knocking) gets M_FORBIDDEN.
// Below it, each event is shown or left out by the room's history
// visibility at the event (readPage).
func (s *SyncAPI) readableUpTo(ctx context.Context, roomID, userID string, now int64) (int64, error) {
	m, err := s.reader.MembershipAt(ctx, roomID, userID, now)
	if err != nil {
		return 0, err
	}
	switch m {
	case roomserver.MembershipJoin:
		return now, nil
	case roomserver.MembershipLeave, roomserver.MembershipBan:
		rooms, err := s.reader.RoomsOfUser(ctx, userID, roomserver.MembershipLeave, roomserver.MembershipBan)
		if err != nil {
			return 0, err
		}
		for _, r := range rooms {
			if r.RoomID != roomID || r.Pos > now {
				continue
			}
			prev, err := s.reader.MembershipAt(ctx, roomID, userID, r.Pos-1)
			if err != nil {
				return 0, err
			}
			if prev == roomserver.MembershipJoin {
				return r.Pos, nil
			}
		}
	}
	return 0, mxerr.Forbidden("%s may not read the events of %s", userID, roomID)
}
