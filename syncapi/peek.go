package syncapi

// Room previews ("peeking", the spec's Room Previews module): GET
// /rooms/{roomId}/initialSync and the peeking GET /events?room_id=. A user
// who is not in a room reads it when its history visibility is
// world_readable, and then only the events whose state had it so; members
// read it as /messages lets them (former members up to their leave). The
// deprecated global /events stream is not served. Waiting peeks are woken
// by their own ordered consumer of the roomserver's output (peekHub),
// because syncapi's notifier wakes users, and a peeker is not in the room.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
)

const (
	initialSyncLimit   = 20
	peekEventsLimit    = 100
	defaultPeekTimeout = 30 * time.Second
	worldReadable      = "world_readable"
)

// peekHub serves the peeking routes and wakes waiting /events requests per
// room. It holds no per-user state: a room's channel is closed (and
// dropped) by the room's next event.
type peekHub struct {
	s *SyncAPI

	mu    sync.Mutex
	rooms map[string]chan struct{}
}

// routePeek registers the peeking routes and starts the consumer that
// wakes them. Without the consumer (which New's own would have failed
// first), waiting peeks poll.
func (s *SyncAPI) routePeek(r *httputil.Router) {
	h := &peekHub{s: s, rooms: map[string]chan struct{}{}}
	if s.bus != nil {
		sub, err := roomserver.Output.ConsumeNew(context.Background(), s.bus, h.onEvent)
		if err != nil {
			s.log.Error("peeking: listen to room events; waiting peeks will poll", "err", err)
		} else {
			s.subs = append(s.subs, sub)
		}
	}
	r.Handle("GET "+v3+"/rooms/{roomId}/initialSync", httputil.RequireAuth, h.initialSync)
	r.Handle("GET "+v3+"/events", httputil.RequireAuth, h.events)
}

func (h *peekHub) onEvent(_ context.Context, _ uint64, ev *roomserver.OutputEvent) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.rooms[ev.RoomID]; ok {
		close(ch)
		delete(h.rooms, ev.RoomID)
	}
	return nil
}

// roomChannel is closed by the next event of roomID handled. Taken before
// the database is read, it cannot miss an event stored after that read.
func (h *peekHub) roomChannel(roomID string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.rooms[roomID]
	if !ok {
		ch = make(chan struct{})
		h.rooms[roomID] = ch
	}
	return ch
}

// peekAccess is what a user may read of a room.
type peekAccess struct {
	membership string // the user's current membership, "" if none
	upTo       int64  // the last readable position
	// peeking: the user reads as an outsider, only the events whose
	// state had world_readable history.
	peeking bool
	state   []roomserver.ClientEvent // the state at upTo, when already read
}

// access decides what userID may read of roomID at now: a joined user
// everything, anyone the whole of a world-readable room, a former member
// up to their leave (readableUpTo); others get M_FORBIDDEN, as for an
// unknown room.
func (s *SyncAPI) peekAccess(ctx context.Context, roomID, userID string, now int64) (*peekAccess, error) {
	m, err := s.reader.MembershipAt(ctx, roomID, userID, now)
	if err != nil {
		return nil, err
	}
	if m == roomserver.MembershipJoin {
		return &peekAccess{membership: m, upTo: now}, nil
	}
	state, err := s.reader.StateAt(ctx, roomID, now)
	if err != nil {
		return nil, err
	}
	if historyVisibility(state) == worldReadable {
		return &peekAccess{membership: m, upTo: now, peeking: true, state: state}, nil
	}
	upTo, err := s.readableUpTo(ctx, roomID, userID, now)
	if err != nil {
		return nil, err
	}
	return &peekAccess{membership: m, upTo: upTo}, nil
}

// historyVisibility reads m.room.history_visibility from a state, "shared"
// (the spec's default) when absent or unreadable.
func historyVisibility(state []roomserver.ClientEvent) string {
	for _, ev := range state {
		if ev.Type == "m.room.history_visibility" && ev.StateKey != nil && *ev.StateKey == "" {
			var c struct {
				HistoryVisibility string `json:"history_visibility"`
			}
			if json.Unmarshal(ev.Content, &c) == nil && c.HistoryVisibility != "" {
				return c.HistoryVisibility
			}
		}
	}
	return "shared"
}

// worldReadableOnly keeps the events (ascending) whose state before them
// had world_readable history visibility: the visibility before the first
// is read once, then followed through the history-visibility events of
// the list itself.
func (s *SyncAPI) worldReadableOnly(ctx context.Context, roomID string, evs []roomserver.StreamEvent) ([]roomserver.StreamEvent, error) {
	if len(evs) == 0 {
		return evs, nil
	}
	before, err := s.reader.StateBefore(ctx, roomID, evs[0].Pos)
	if err != nil {
		return nil, err
	}
	vis := historyVisibility(before)
	out := evs[:0:0]
	for _, ev := range evs {
		if vis == worldReadable {
			out = append(out, ev)
		}
		if e := ev.Event; e.Type == "m.room.history_visibility" && e.StateKey != nil && *e.StateKey == "" {
			vis = historyVisibility([]roomserver.ClientEvent{e})
		}
	}
	return out, nil
}

// initialSyncResponse is GET /rooms/{roomId}/initialSync's answer.
type initialSyncResponse struct {
	RoomID      string                   `json:"room_id"`
	Membership  string                   `json:"membership,omitempty"`
	Messages    peekChunk                `json:"messages"`
	State       []roomserver.ClientEvent `json:"state"`
	Visibility  string                   `json:"visibility"`
	AccountData []json.RawMessage        `json:"account_data"`
	Presence    []json.RawMessage        `json:"presence"`
}

// peekChunk is initialSync's messages and /events' answer.
type peekChunk struct {
	Start string                   `json:"start,omitempty"`
	End   string                   `json:"end"`
	Chunk []roomserver.ClientEvent `json:"chunk"`
}

// initialSync serves GET /rooms/{roomId}/initialSync: the latest events
// up to what the user may read, the state there, the room's directory
// visibility and the user's account data for the room.
func (h *peekHub) initialSync(req *httputil.Request) (any, error) {
	s := h.s
	roomID := req.PathValue("roomId")
	if !mxid.RoomID(roomID) {
		return nil, mxerr.InvalidParam("%q is not a room ID", roomID)
	}
	ctx := req.Context()
	userID := req.Device.UserID
	now, err := s.reader.MaxPos(ctx)
	if err != nil {
		return nil, err
	}
	acc, err := s.peekAccess(ctx, roomID, userID, now)
	if err != nil {
		return nil, err
	}
	evs, err := s.reader.Events(ctx, roomID, 0, acc.upTo, initialSyncLimit, true)
	if err != nil {
		return nil, err
	}
	slices.Reverse(evs)
	// start is before the chunk's first event (as /messages' backwards
	// end), so /messages?dir=b&from=start reads what precedes it.
	start := formatToken(acc.upTo)
	if len(evs) > 0 {
		start = formatToken(evs[0].Pos - 1)
	}
	if acc.peeking {
		if evs, err = s.worldReadableOnly(ctx, roomID, evs); err != nil {
			return nil, err
		}
	}
	state := acc.state
	if state == nil {
		if state, err = s.reader.StateAt(ctx, roomID, acc.upTo); err != nil {
			return nil, err
		}
	}
	f := newFormatter(req.Device, true)
	resp := &initialSyncResponse{
		RoomID:     roomID,
		Membership: acc.membership,
		Messages:   peekChunk{Start: start, End: formatToken(acc.upTo), Chunk: f.stream(evs)},
		State:      f.state(state),
		Visibility: roomserver.VisibilityPrivate,
		Presence:   []json.RawMessage{},
	}
	if s.bus != nil {
		vis, err := roomserver.QueryVisibility.Call(ctx, s.bus, &roomserver.RoomRequest{UserID: userID, RoomID: roomID})
		if err == nil && vis.Visibility != "" {
			resp.Visibility = vis.Visibility
		} else if err != nil {
			s.log.Warn("initialSync: directory visibility", "room", roomID, "err", err)
		}
	}
	if resp.AccountData, err = s.store.roomAccountData(ctx, userID, roomID); err != nil {
		return nil, err
	}
	return resp, nil
}

// events serves the peeking GET /events?room_id=: the events of the room
// after from, waiting up to timeout for one when there is none yet.
func (h *peekHub) events(req *httputil.Request) (any, error) {
	s := h.s
	q := req.URL.Query()
	roomID := q.Get("room_id")
	if roomID == "" {
		return nil, mxerr.MissingParam("room_id is required: only the peeking /events is served")
	}
	if !mxid.RoomID(roomID) {
		return nil, mxerr.InvalidParam("room_id: %q is not a room ID", roomID)
	}
	var from *int64
	fromToken := q.Get("from")
	if fromToken != "" {
		pos, err := parseToken("from", fromToken)
		if err != nil {
			return nil, err
		}
		from = &pos
	}
	timeout := defaultPeekTimeout
	if v := q.Get("timeout"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, mxerr.InvalidParam("timeout: %q is not a number of milliseconds", v)
		}
		timeout = min(time.Duration(max(ms, 0))*time.Millisecond, maxTimeout)
	}
	ctx := req.Context()
	userID := req.Device.UserID
	deadline := time.Now().Add(timeout)
	for {
		woken := h.roomChannel(roomID)
		now, err := s.reader.MaxPos(ctx)
		if err != nil {
			return nil, err
		}
		acc, err := s.peekAccess(ctx, roomID, userID, now)
		if err != nil {
			return nil, err
		}
		if from == nil { // no token: from now on
			from, fromToken = &acc.upTo, formatToken(acc.upTo)
		}
		resp := &peekChunk{Start: fromToken, End: fromToken, Chunk: []roomserver.ClientEvent{}}
		if *from < acc.upTo {
			evs, err := s.reader.Events(ctx, roomID, *from, acc.upTo, peekEventsLimit, false)
			if err != nil {
				return nil, err
			}
			// end is past what was read, even when visibility drops it all.
			end := acc.upTo
			if len(evs) == peekEventsLimit {
				end = evs[len(evs)-1].Pos
			}
			if acc.peeking {
				if evs, err = s.worldReadableOnly(ctx, roomID, evs); err != nil {
					return nil, err
				}
			}
			resp.End = formatToken(end)
			resp.Chunk = newFormatter(req.Device, true).stream(evs)
			if len(evs) > 0 {
				return resp, nil
			}
			from = &end
		}
		if acc.upTo < now || !h.wait(ctx, woken, deadline) {
			return resp, nil // a former member's stream has ended, or time is up
		}
	}
}

// wait waits for the room's channel (true) or for the deadline, the
// client going away or shutdown (false). It rechecks every few seconds in
// case the consumer could not start.
func (h *peekHub) wait(ctx context.Context, woken <-chan struct{}, deadline time.Time) bool {
	d := time.Until(deadline)
	if d <= 0 {
		return false
	}
	timer := time.NewTimer(min(d, 5*time.Second))
	defer timer.Stop()
	select {
	case <-woken:
		return true
	case <-timer.C:
		return time.Until(deadline) > 0
	case <-ctx.Done():
	case <-h.s.done:
	}
	return false
}

// roomAccountData is userID's account data for roomID (tags among them),
// as events.
func (st *store) roomAccountData(ctx context.Context, userID, roomID string) ([]json.RawMessage, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT type, content FROM sy_account_data
		WHERE user_id = $1 AND room_id = $2 ORDER BY type`, userID, roomID)
	if err != nil {
		return nil, fmt.Errorf("read room account data: %w", err)
	}
	defer rows.Close()
	out := []json.RawMessage{}
	for rows.Next() {
		var typ, content string
		if err := rows.Scan(&typ, &content); err != nil {
			return nil, fmt.Errorf("read room account data: %w", err)
		}
		ev, err := json.Marshal(struct {
			Type    string          `json:"type"`
			Content json.RawMessage `json:"content"`
		}{typ, json.RawMessage(content)})
		if err != nil {
			continue // content that is not JSON is not sent
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

// messagesUpTo is the last position of roomID /messages may return to the
// user: what readableUpTo allows a member or former member, or, for anyone
// else, everything of a world-readable room (peeking is then true and only
// the world-readable part may be shown).
func (s *SyncAPI) messagesUpTo(ctx context.Context, roomID, userID string, now int64) (upTo int64, peeking bool, err error) {
	upTo, err = s.readableUpTo(ctx, roomID, userID, now)
	if me, ok := mxerr.As(err); !ok || me.Code != "M_FORBIDDEN" {
		return upTo, false, err
	}
	access, perr := s.peekAccess(ctx, roomID, userID, now)
	if perr != nil || !access.peeking {
		return 0, false, err
	}
	return now, true, nil
}

// worldReadableInOrder is worldReadableOnly for a list in either order.
func (s *SyncAPI) worldReadableInOrder(ctx context.Context, roomID string, evs []roomserver.StreamEvent, descending bool) ([]roomserver.StreamEvent, error) {
	if !descending {
		return s.worldReadableOnly(ctx, roomID, evs)
	}
	asc := slices.Clone(evs)
	slices.Reverse(asc)
	out, err := s.worldReadableOnly(ctx, roomID, asc)
	slices.Reverse(out)
	return out, err
}
