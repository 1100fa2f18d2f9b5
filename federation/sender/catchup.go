package sender

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// catchUp cuts the backlog of a destination that was down: in each room
// with more than CatchUpAfter PDUs waiting for it, only the waiting PDUs
// that are still forward extremities of the room are kept (or, when none
// is, the newest): the destination asks for the rest with
// get_missing_events when it sees their prev_events, which is cheaper
// than hundreds of transactions, and skips what it no longer needs.
func (s *Sender) catchUp(ctx context.Context, dest string) error {
	rooms, err := s.store.backloggedRooms(ctx, dest, s.opts.CatchUpAfter)
	if err != nil {
		return err
	}
	for _, roomID := range rooms {
		extremities, err := s.opts.Rooms.Extremities(ctx, roomID)
		if err != nil {
			return fmt.Errorf("catch-up of %s: extremities of %s: %w", dest, roomID, err)
		}
		dropped, err := s.store.cutBacklog(ctx, dest, roomID, extremities)
		if err != nil {
			return err
		}
		if dropped > 0 {
			s.metrics.addDepth(dest, -dropped, 0)
			s.log.Info("catch-up: room backlog cut to its newest events", "destination", dest, "room_id", roomID, "dropped", dropped)
		}
	}
	return nil
}

// backloggedRooms lists the rooms with more than limit PDUs waiting (not
// in a transaction) for dest.
func (st *store) backloggedRooms(ctx context.Context, dest string, limit int) ([]string, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT room_id FROM fs_queue_pdus WHERE destination = $1 AND txn_id = ''
		GROUP BY room_id HAVING COUNT(*) > $2`, dest, limit)
	if err != nil {
		return nil, fmt.Errorf("read backlog of %s: %w", dest, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var room string
		if err := rows.Scan(&room); err != nil {
			return nil, fmt.Errorf("read backlog of %s: %w", dest, err)
		}
		out = append(out, room)
	}
	return out, rows.Err()
}

// cutBacklog removes the waiting PDUs of roomID for dest except those
// among keep (the room's extremities), or except the newest when none is;
// it returns the number removed.
func (st *store) cutBacklog(ctx context.Context, dest, roomID string, keep []string) (int, error) {
	var dropped int
	err := st.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT q.id, j.event_id FROM fs_queue_pdus q
			JOIN fs_pdu_json j ON j.event_nid = q.event_nid
			WHERE q.destination = $1 AND q.room_id = $2 AND q.txn_id = '' ORDER BY q.id`, dest, roomID)
		if err != nil {
			return err
		}
		type row struct {
			id   int64
			kept bool
		}
		var queued []row
		anyKept := false
		for rows.Next() {
			var r row
			var eventID string
			if err := rows.Scan(&r.id, &eventID); err != nil {
				rows.Close()
				return err
			}
			r.kept = slices.Contains(keep, eventID)
			anyKept = anyKept || r.kept
			queued = append(queued, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(queued) == 0 {
			return nil
		}
		if !anyKept {
			queued[len(queued)-1].kept = true
		}
		args := []any{dest, roomID}
		marks := make([]string, 0, len(keep))
		for _, r := range queued {
			if r.kept {
				args = append(args, r.id)
				marks = append(marks, fmt.Sprintf("$%d", len(args)))
			}
		}
		if dropped, err = execCount(ctx, tx, `DELETE FROM fs_queue_pdus WHERE destination = $1 AND room_id = $2 AND txn_id = ''
			AND id NOT IN (`+strings.Join(marks, ", ")+`)`, args...); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM fs_pdu_json WHERE room_id = $1
			AND NOT EXISTS (SELECT 1 FROM fs_queue_pdus q WHERE q.event_nid = fs_pdu_json.event_nid)`, roomID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("cut backlog of %s in %s: %w", dest, roomID, err)
	}
	return dropped, nil
}
