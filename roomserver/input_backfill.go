package roomserver

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Backfilled history needs positions where /messages, paginating
// backwards with ordinary position tokens, walks into it at its place in
// the DAG: below the event whose prev_events it fills in, above the
// history stored before. Positions only grow and are unique across rooms,
// so the positions are reserved in advance, when an event whose
// prev_events are not part of the room's DAG joins the timeline (its
// state given instead). Such an event is the top of a reserve: it takes
// the position last + backfillGap + 1, and the positions in between are
// the reserve's. There are two kinds:
//
//   - a federated join (storeJoinedRoom): the room's history before it;
//     rs_rooms.backfill_next (the next position down, the join's at
//     first) and backfill_floor (the last position before the gap). A
//     second join of the room (after the server left) replaces them: what
//     was left below the first is then no longer filled;
//   - a hole in the middle of the history (reserveHole): /send's gap
//     filling gave up fetching the missing events and took the state
//     from /state_ids; rs_backfill_reserves, one row per hole.
//
// A backfilled event takes a position in the reserve of the lowest event
// of the timeline that names it among its prev_events (stored, or
// backfilled in the same request): downwards from the reserve's next,
// newest first, so that each page a backfill brings lies below the one
// before. Nothing is ever committed at a position below one a reader has
// seen except these, which are old history: incremental syncs never see
// them, and they are not published.
//
// A reserve holds backfillGap events. It cannot be refilled: the
// positions around it belong to other events, and moving events would
// break the tokens clients hold. So when it is used up the older events
// are not stored at all (InputNoPosition): they stay on the other
// servers, the history shown stops there, in order, and the event at the
// bottom stays a backward extremity that /messages no longer backfills
// from (HistoryGaps). Before, they were stored outside the timeline,
// where no reader would ever show them, and backfill went on past them.
// HistoryGaps tells how many positions are left, and /messages asks for
// no more: the oldest event of a backfill gets its state from /state_ids,
// so the events that fit can be stored. (Given more, the newest get the
// positions and the oldest none; those kept whose prev_events were cut
// off come back missing, and their positions are handed out again.)
// 2^20 events is more history than one gap or one room's past usually
// has; positions are 64-bit, so each reserve costs nothing but numbers.
var backfillGap int64 = 1 << 20

// InputNoPosition is the status of a backfilled event that was not
// stored because it has no place in the room's timeline: the reserve
// below the event that needs it is used up, or no event of the timeline
// needs it. Nothing was stored; Reason says which.
const InputNoPosition = "no_position"

// historyReserve is one reserve: positions in (floor, top), handed out
// downwards from next.
type historyReserve struct {
	join             bool // the join's (rs_rooms), else a hole's (rs_backfill_reserves)
	top, next, floor int64
	used             int64        // positions handed out by this request
	given            []*inputItem // the events they went to
}

// holds tells whether the reserve is the one for events older than the
// event at pos: pos is its top or an event stored in it.
func (r *historyReserve) holds(pos int64) bool { return r.floor < pos && pos <= r.top }

// left is how many positions are still free.
func (r *historyReserve) left() int64 { return r.next - 1 - r.used - r.floor }

// take hands out the next position, if any is left.
func (r *historyReserve) take() (int64, bool) {
	if r.left() <= 0 {
		return 0, false
	}
	r.used++
	return r.next - r.used, true
}

// loadReserves reads a room's reserves.
func loadReserves(ctx context.Context, q sqlutil.Querier, roomNID int64) ([]*historyReserve, error) {
	var out []*historyReserve
	var next, floor int64
	err := q.QueryRowContext(ctx, `SELECT backfill_next, backfill_floor FROM rs_rooms WHERE room_nid = $1`, roomNID).Scan(&next, &floor)
	if err != nil {
		return nil, fmt.Errorf("read the join's backfill positions: %w", err)
	}
	if next > 0 {
		// storeJoinedRoom put the join at floor + backfillGap + 1.
		out = append(out, &historyReserve{join: true, top: floor + backfillGap + 1, next: next, floor: floor})
	}
	rows, err := q.QueryContext(ctx, `SELECT top_pos, next_pos, floor_pos FROM rs_backfill_reserves WHERE room_nid = $1`, roomNID)
	if err != nil {
		return nil, fmt.Errorf("read backfill reserves: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r := &historyReserve{}
		if err := rows.Scan(&r.top, &r.next, &r.floor); err != nil {
			return nil, fmt.Errorf("scan backfill reserve: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// reserveFor is the reserve for events older than the event at pos (nil
// if none).
func reserveFor(reserves []*historyReserve, pos int64) *historyReserve {
	for _, r := range reserves {
		if r.holds(pos) {
			return r
		}
	}
	return nil
}

// backfillSlots hands out the reserved positions to a request's
// backfilled events.
type backfillSlots struct {
	reserves []*historyReserve
}

// reserve gives each backfilled event of the request a position: in the
// reserve of its lowest child in the timeline, newest first, below the
// positions earlier requests took. An event that gets none is taken out
// of the request (InputNoPosition).
func (s *backfillSlots) reserve(ctx context.Context, tx *sqlutil.Tx, roomNID int64, items []*inputItem) error {
	var backfilled []*inputItem
	for _, it := range items {
		if it.pdu != nil && it.in.Kind == InputKindBackfill {
			backfilled = append(backfilled, it)
		}
	}
	if len(backfilled) == 0 {
		return nil
	}
	var err error
	if s.reserves, err = loadReserves(ctx, tx, roomNID); err != nil {
		return err
	}
	ids := make([]string, len(backfilled))
	for i, it := range backfilled {
		ids[i] = it.pdu.EventID()
	}
	lowest, err := lowestChildren(ctx, tx, roomNID, ids)
	if err != nil {
		return err
	}
	// The request's events that name each event among their prev_events.
	children := map[string][]*inputItem{}
	for _, it := range backfilled {
		for _, p := range it.pdu.PrevEventIDs() {
			children[p] = append(children[p], it)
		}
	}
	// Newest first, so that an event's children in the request have their
	// positions before it; events of one depth keep the request's order.
	order := slices.Clone(backfilled)
	slices.Reverse(order)
	slices.SortStableFunc(order, func(a, b *inputItem) int { return cmp.Compare(b.pdu.Depth(), a.pdu.Depth()) })
	for _, it := range order {
		below := lowest[it.pdu.EventID()]
		for _, c := range children[it.pdu.EventID()] {
			if c.slot > 0 && (below == 0 || c.slot < below) {
				below = c.slot
			}
		}
		r := reserveFor(s.reserves, below)
		if below == 0 || r == nil {
			noSlot(it, "no event of the room's timeline with positions reserved below it has it among its prev_events")
			continue
		}
		pos, ok := r.take()
		if !ok {
			noSlot(it, fmt.Sprintf("the %d positions reserved for the history below position %d are used up", r.top-r.floor-1, r.top))
			continue
		}
		it.slot = pos
		r.given = append(r.given, it)
	}
	return nil
}

// noSlot takes a backfilled event out of the request: apply skips an
// item without a parsed event, and the result says why. A late event
// (lateAsHistory) is input as new instead, at the top of the timeline.
func noSlot(it *inputItem, reason string) {
	if it.late {
		it.late, it.in.Kind = false, InputKindNew
		return
	}
	it.result.Status, it.result.Reason = InputNoPosition, reason
	it.pdu = nil
}

// lateAsHistory makes history of the new events that events of the
// room's DAG already descend from (named: those among the request's new
// events that stored events name among their prev_events), and of the
// request's new events they descend from in turn. A server whose sender
// lags, or that sends by the room's members at the time it sends, gives
// a server that just joined events from before its join; and a hole's
// events may come through /send after the state that bridged it. Their
// place is below the events that name them, in those events' reserve
// (backfillSlots.reserve), where /messages shows them in the DAG's
// order; /sync shows no such event as new.
func lateAsHistory(items []*inputItem, named map[string]bool) {
	older := maps.Clone(named)
	for changed := true; changed; {
		changed = false
		for _, it := range items {
			if it.pdu == nil || it.in.Kind != InputKindNew || !older[it.pdu.EventID()] {
				continue
			}
			it.late, it.in.Kind = true, InputKindBackfill
			for _, p := range it.pdu.PrevEventIDs() {
				older[p] = true
			}
			changed = true
		}
	}
}

// lowestChildren maps each of ids to the lowest position of a stored
// timeline event of the room naming it among its prev_events (absent:
// none).
func lowestChildren(ctx context.Context, q sqlutil.Querier, roomNID int64, ids []string) (map[string]int64, error) {
	children, err := childEdges(ctx, q, ids) // fork.go
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, c := range children {
		// timelineEvent (reader.go), checked here: see childEdgesSQL.
		if c.roomNID != roomNID || c.pos <= 0 || c.outlier || c.softFailed || c.rejected {
			continue
		}
		if low, ok := out[c.prevID]; !ok || c.pos < low {
			out[c.prevID] = c.pos
		}
	}
	return out, nil
}

// save records the positions used: down to the lowest an event stored
// took. Those given to events that were not stored (missing prev_events
// or auth events, rejected) below it are handed out again.
func (s *backfillSlots) save(ctx context.Context, tx *sqlutil.Tx, roomNID int64) error {
	for _, r := range s.reserves {
		next := r.next
		for _, it := range r.given {
			if it.result.Status == InputAccepted {
				next = min(next, it.slot)
			}
		}
		if next == r.next {
			continue
		}
		var err error
		if r.join {
			_, err = tx.ExecContext(ctx, `UPDATE rs_rooms SET backfill_next = $1 WHERE room_nid = $2`, next, roomNID)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE rs_backfill_reserves SET next_pos = $1 WHERE room_nid = $2 AND top_pos = $3`,
				next, roomNID, r.top)
		}
		if err != nil {
			return fmt.Errorf("update backfill positions: %w", err)
		}
	}
	return nil
}

// reserveHole, for an event about to join the timeline with the state
// given because some of its prev_events are not part of the room's DAG,
// keeps the backfillGap positions below it for the events of the hole:
// backfill places them there, between the event and the history stored
// before it.
func (j *inputJob) reserveHole(ctx context.Context, it *inputItem) error {
	if len(it.in.StateBefore) == 0 || !j.lacksPrevEvents(it) {
		return nil
	}
	floor := j.pos
	j.pos += backfillGap
	top := j.pos + 1 // the event's position
	_, err := j.tx.ExecContext(ctx, `INSERT INTO rs_backfill_reserves (room_nid, top_pos, next_pos, floor_pos) VALUES ($1, $2, $3, $4)`,
		j.h.nid, top, top, floor)
	if err != nil {
		return fmt.Errorf("reserve positions below %s: %w", it.pdu.EventID(), err)
	}
	return nil
}

// lacksPrevEvents tells whether one of the event's prev_events is not
// part of the room's DAG (unknown, or only an outlier).
func (j *inputJob) lacksPrevEvents(it *inputItem) bool {
	for _, id := range it.pdu.PrevEventIDs() {
		d := j.known[id]
		if d == nil || d.roomNID != j.h.nid || (d.outlier && !d.rejected) {
			return true
		}
	}
	return false
}
