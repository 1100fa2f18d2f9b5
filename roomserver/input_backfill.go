package roomserver

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Backfilled history needs positions below the room's timeline, where
// /messages, paginating backwards with ordinary position tokens, walks
// into it after the room's earliest events. Positions only grow, so a
// federated join reserves them in advance: the join takes the position
// last + backfillGap + 1 (storeJoinedRoom), and rs_rooms.backfill_next
// (the join's position) and backfill_floor (the last position before
// the gap) bound the room's reserve. Backfilled events take positions
// downwards from backfill_next, newest first. Nothing is ever committed
// at a position below one a reader has seen except these, which are old
// history: incremental syncs never see them, and they are not published.
// A room whose reserve is used up (or that has none, as rooms created
// here, which never need backfill) stores further backfilled events
// outside the timeline (negative positions).
const backfillGap = 1 << 20

// backfillSlots hands out the reserved positions to a request's
// backfilled events.
type backfillSlots struct {
	next, floor int64
	used        int64
}

// reserve gives each backfilled event of the request a position: by
// depth, newest highest, below the positions earlier requests took.
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
	err := tx.QueryRowContext(ctx, `SELECT backfill_next, backfill_floor FROM rs_rooms WHERE room_nid = $1`, roomNID).
		Scan(&s.next, &s.floor)
	if err != nil {
		return fmt.Errorf("read backfill positions: %w", err)
	}
	// Newest first; events of one depth keep the request's order.
	order := slices.Clone(backfilled)
	slices.Reverse(order)
	slices.SortStableFunc(order, func(a, b *inputItem) int { return cmp.Compare(b.pdu.Depth(), a.pdu.Depth()) })
	for _, it := range order {
		if pos := s.next - 1 - s.used; pos > s.floor {
			it.slot = pos
			s.used++
		}
	}
	return nil
}

// save records the positions used.
func (s *backfillSlots) save(ctx context.Context, tx *sqlutil.Tx, roomNID int64) error {
	if s.used == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE rs_rooms SET backfill_next = $1 WHERE room_nid = $2`, s.next-s.used, roomNID); err != nil {
		return fmt.Errorf("update backfill positions: %w", err)
	}
	return nil
}
