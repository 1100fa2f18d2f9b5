package syncapi

import (
	"context"
	"math"
	"slices"
	"sync"

	"github.com/chappe-matrix/chappe/roomserver"
)

// historyFilter leaves out of one sync's timelines (/sync and sliding
// sync) the events the user may not see by the room's history
// visibility, with the roomserver's HistoryReader. It asks only about
// the events of a room from before the user's join: whatever the room's
// history visibility, a member sees what was sent while they are joined.
// And it asks the rooms whose history is open to members ("shared", as
// most are) once for all, lazily: a sync whose timelines all start after
// the user's join reads nothing more, and one that reaches back in many
// rooms a query per 128 rooms (HistoryOpenThrough), not one per room.
type historyFilter struct {
	hr     roomserver.HistoryReader // nil: the reader applies no history visibility
	userID string
	rooms  []string // the rooms whose timelines may reach back before the join

	once sync.Once
	open map[string]int64 // HistoryOpenThrough of rooms
	err  error
}

func newHistoryFilter(reader roomserver.EventReader, userID string) *historyFilter {
	hr, _ := reader.(roomserver.HistoryReader)
	return &historyFilter{hr: hr, userID: userID}
}

// consider adds a room whose timeline may reach back before the user's
// join. Rooms are added before any is read; a room not added is still
// filtered, by VisibleEvents alone.
func (hf *historyFilter) consider(roomID string) {
	hf.rooms = append(hf.rooms, roomID)
}

// openThrough is the position through which the user sees every event
// of roomID (0: none known).
func (hf *historyFilter) openThrough(ctx context.Context, roomID string) (int64, error) {
	hf.once.Do(func() {
		if len(hf.rooms) > 0 {
			hf.open, hf.err = hf.hr.HistoryOpenThrough(ctx, hf.userID, hf.rooms)
		}
	})
	return hf.open[roomID], hf.err
}

// toJudge lists the events of evs (a room's) that VisibleEvents must
// judge, in their order. The user was joined throughout (joinedAfter,
// the end of the timeline], so the events there are theirs (joinedAfter
// 0 is not known: every event is judged), and so are those that
// HistoryOpenThrough opens to them.
func (hf *historyFilter) toJudge(ctx context.Context, roomID string, evs []roomserver.StreamEvent, joinedAfter int64) ([]roomserver.StreamEvent, error) {
	if joinedAfter <= 0 {
		joinedAfter = math.MaxInt64
	}
	if hf == nil || hf.hr == nil || !slices.ContainsFunc(evs, func(ev roomserver.StreamEvent) bool { return ev.Pos <= joinedAfter }) {
		return nil, nil
	}
	through, err := hf.openThrough(ctx, roomID)
	if err != nil {
		return nil, err
	}
	var judge []roomserver.StreamEvent
	for _, ev := range evs {
		if ev.Pos <= joinedAfter && ev.Pos > through {
			judge = append(judge, ev)
		}
	}
	return judge, nil
}

// keep returns the events of evs (a room's, in any order) that the user
// may see, in their order (toJudge tells which to ask about).
func (hf *historyFilter) keep(ctx context.Context, roomID string, evs []roomserver.StreamEvent, joinedAfter int64) ([]roomserver.StreamEvent, error) {
	judge, err := hf.toJudge(ctx, roomID, evs, joinedAfter)
	if err != nil || len(judge) == 0 {
		return evs, err
	}
	visible, err := hf.hr.VisibleEvents(ctx, roomID, hf.userID, judge)
	if err != nil {
		return nil, err
	}
	hidden := make(map[int64]bool, len(judge)-len(visible))
	for _, ev := range judge {
		hidden[ev.Pos] = true
	}
	for _, ev := range visible {
		delete(hidden, ev.Pos)
	}
	if len(hidden) == 0 {
		return evs, nil
	}
	return slices.DeleteFunc(slices.Clone(evs), func(ev roomserver.StreamEvent) bool { return hidden[ev.Pos] }), nil
}

// timelineRead reads the latest events of a room's range that the user
// may see and that match, for a timeline.
type timelineRead struct {
	reader  roomserver.EventReader
	history *historyFilter
	roomID  string
	// from < pos <= to; the user was joined throughout (joinedAfter, to]
	// (0: not known).
	from, to, joinedAfter int64
	limit                 int
	page                  int                                   // events read at a time, > limit
	match                 func(ev *roomserver.ClientEvent) bool // nil: every event
}

// timelineScanLimit bounds how many events one room's timeline reads when
// a filter drops most of them; past it the timeline is cut (limited).
const timelineScanLimit = 1000

// run returns up to limit events, oldest first. limited: older events
// the user may see may have been left out (prev_batch, just before the
// first event returned, leads to them: /messages skips what history
// visibility hides, as here). dropped: the filter or history visibility
// left events of the range out, whose state changes the client has not
// seen. A page of events the user may not see at all ends the read: the
// events before the join of a room with "joined" history are not read
// to the room's start.
func (tr *timelineRead) run(ctx context.Context) (evs []roomserver.StreamEvent, limited, dropped bool, err error) {
	upper, scanned := tr.to, 0
	for {
		got, err := tr.reader.Events(ctx, tr.roomID, tr.from, upper, tr.page, true)
		if err != nil {
			return nil, false, false, err
		}
		seen, err := tr.history.keep(ctx, tr.roomID, got, tr.joinedAfter)
		if err != nil {
			return nil, false, false, err
		}
		if len(seen) < len(got) {
			dropped = true
		}
		for _, ev := range seen {
			if len(evs) > tr.limit {
				break
			}
			if tr.match == nil || tr.match(&ev.Event) {
				evs = append(evs, ev)
			} else {
				dropped = true
			}
		}
		scanned += len(got)
		if len(evs) > tr.limit || len(got) < tr.page {
			break
		}
		if scanned >= timelineScanLimit || len(seen) == 0 {
			limited = true
			break
		}
		upper = got[len(got)-1].Pos - 1
	}
	if len(evs) > tr.limit {
		evs, limited = evs[:tr.limit], true
	}
	slices.Reverse(evs)
	return evs, limited, dropped, nil
}
