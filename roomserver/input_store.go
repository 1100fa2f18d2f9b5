package roomserver

import (
	"context"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// rowFlags are an event's flags in rs_events.
type rowFlags struct {
	outlier, rejected, softFailed, backfilled bool
}

// eventRow is an rs_events row of an event of another server.
type eventRow struct {
	pdu gomatrixserverlib.PDU
	pos int64
	rowFlags
	replaces              int64
	snapBefore, snapAfter int64  // the event's own state (DAG)
	roomBefore, roomAfter int64  // the room's current state around it
	json                  []byte // the stored JSON, when not the PDU's
	nid                   int64  // once stored
}

func newEventRow(ev gomatrixserverlib.PDU, pos int64) *eventRow {
	return &eventRow{pdu: ev, pos: pos}
}

// setState sets the event's state before and after, and the room's to the
// same (true of every event but accepted ones where branches meet).
func (r *eventRow) setState(before, after *stateView) {
	r.snapBefore, r.snapAfter = before.nid, after.nid
	r.roomBefore, r.roomAfter = before.nid, after.nid
}

// membershipOf is the membership a member event sets (nil for others).
func membershipOf(ev gomatrixserverlib.PDU) *string {
	if ev.Type() != spec.MRoomMember || ev.StateKey() == nil {
		return nil
	}
	m, err := ev.Membership()
	if err != nil {
		return nil
	}
	return &m
}

// save inserts the row, or updates the stored outlier it makes part of
// the DAG (the event keeps its nid), and returns the nid.
func (r *eventRow) save(ctx context.Context, tx *sqlutil.Tx, roomNID int64, stored *dagEvent) (int64, error) {
	ev := r.pdu
	if stored != nil {
		_, err := tx.ExecContext(ctx, `UPDATE rs_events SET stream_pos = $1, outlier = $2, rejected = $3, soft_failed = $4,
			backfilled = $5, replaces_nid = $6, snapshot_before_nid = $7, snapshot_nid = $8, room_snapshot_before_nid = $9,
			room_snapshot_nid = $10 WHERE event_nid = $11`,
			r.pos, r.outlier, r.rejected, r.softFailed, r.backfilled, r.replaces, r.snapBefore, r.snapAfter,
			r.roomBefore, r.roomAfter, stored.nid)
		if err != nil {
			return 0, fmt.Errorf("store event %s: %w", ev.EventID(), err)
		}
		// Edges, caches and the snapshot update that follow use r.nid.
		r.nid = stored.nid
		return stored.nid, nil
	}
	var nid int64
	err := tx.QueryRowContext(ctx, `INSERT INTO rs_events (`+eventRowColumns+`)
		VALUES (`+placeholders(1, 19)+`) RETURNING event_nid`, r.values(roomNID)...).Scan(&nid)
	if err != nil {
		return 0, fmt.Errorf("store event %s: %w", ev.EventID(), err)
	}
	r.nid = nid
	return nid, nil
}

const eventRowColumns = `event_id, room_nid, type, state_key, sender, membership, stream_pos, depth, origin_server_ts, json,
	replaces_nid, snapshot_before_nid, snapshot_nid, room_snapshot_before_nid, room_snapshot_nid, outlier, rejected,
	soft_failed, backfilled`

// values are the row's values for eventRowColumns.
func (r *eventRow) values(roomNID int64) []any {
	ev := r.pdu
	data := r.json
	if data == nil {
		data = ev.JSON()
	}
	return []any{ev.EventID(), roomNID, ev.Type(), ev.StateKey(), string(ev.SenderID()), membershipOf(ev),
		r.pos, ev.Depth(), int64(ev.OriginServerTS()), data, r.replaces, r.snapBefore, r.snapAfter,
		r.roomBefore, r.roomAfter, r.outlier, r.rejected, r.softFailed, r.backfilled}
}

// updateStateAfter sets the snapshots after an event once they are
// written (they need the event's nid).
func updateStateAfter(ctx context.Context, tx *sqlutil.Tx, nid, after, roomAfter int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE rs_events SET snapshot_nid = $1, room_snapshot_nid = $2 WHERE event_nid = $3`,
		after, roomAfter, nid)
	if err != nil {
		return fmt.Errorf("link event %d to its state: %w", nid, err)
	}
	return nil
}
