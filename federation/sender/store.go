package sender

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// store is the sender's queries on the fs_ tables.
type store struct {
	db *sqlutil.DB
}

// pendingTxn is a transaction begun for a destination: its rows carry
// its ID until it succeeds.
type pendingTxn struct {
	id   string
	pdus []json.RawMessage
	edus []gomatrixserverlib.EDU
}

type destState struct {
	failures int
	retryAt  time.Time
}

type depth struct{ pdus, edus int }

// destinations reads the back-off state of every known destination.
func (st *store) destinations(ctx context.Context) (map[string]destState, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT server_name, failures, retry_at_ms FROM fs_destinations`)
	if err != nil {
		return nil, fmt.Errorf("read destinations: %w", err)
	}
	defer rows.Close()
	out := map[string]destState{}
	for rows.Next() {
		var name string
		var failures, retryMS int64
		if err := rows.Scan(&name, &failures, &retryMS); err != nil {
			return nil, fmt.Errorf("read destinations: %w", err)
		}
		ds := destState{failures: int(failures)}
		if retryMS > 0 {
			ds.retryAt = time.UnixMilli(retryMS)
		}
		out[name] = ds
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read destinations: %w", err)
	}
	return out, nil
}

// depths counts what is queued per destination.
func (st *store) depths(ctx context.Context) (map[string]depth, error) {
	out := map[string]depth{}
	for _, q := range []struct {
		query string
		add   func(*depth, int)
	}{
		{`SELECT destination, COUNT(*) FROM fs_queue_pdus GROUP BY destination`, func(d *depth, n int) { d.pdus = n }},
		{`SELECT destination, COUNT(*) FROM fs_queue_edus GROUP BY destination`, func(d *depth, n int) { d.edus = n }},
	} {
		rows, err := st.db.QueryContext(ctx, q.query)
		if err != nil {
			return nil, fmt.Errorf("count queues: %w", err)
		}
		for rows.Next() {
			var name string
			var n int
			if err := rows.Scan(&name, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("count queues: %w", err)
			}
			d := out[name]
			q.add(&d, n)
			out[name] = d
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("count queues: %w", err)
		}
	}
	return out, nil
}

// queuePDU stores the PDU once and a queue row per destination; it returns
// the rows added per destination (0 when the PDU was already queued for
// it, as after a redelivered stream message).
func (st *store) queuePDU(ctx context.Context, tx *sqlutil.Tx, roomID, eventID string, pdu json.RawMessage, dests []string) (map[string]int, error) {
	var nid int64
	// DO UPDATE (not NOTHING) so that RETURNING gives the existing row.
	err := tx.QueryRowContext(ctx, `INSERT INTO fs_pdu_json (event_id, room_id, event_json) VALUES ($1, $2, $3)
		ON CONFLICT (event_id) DO UPDATE SET room_id = excluded.room_id
		RETURNING event_nid`, eventID, roomID, string(pdu)).Scan(&nid)
	if err != nil {
		return nil, fmt.Errorf("queue PDU %s: %w", eventID, err)
	}
	// One statement for every destination: a room with many servers costs
	// one round trip, not one each.
	marks := make([]string, len(dests))
	args := []any{nid, roomID}
	for i, d := range dests {
		args = append(args, d)
		marks[i] = fmt.Sprintf("($%d, $1, $2)", len(args))
	}
	rows, err := tx.QueryContext(ctx, `INSERT INTO fs_queue_pdus (destination, event_nid, room_id) VALUES `+strings.Join(marks, ", ")+`
		ON CONFLICT (destination, event_nid) DO NOTHING RETURNING destination`, args...)
	if err != nil {
		return nil, fmt.Errorf("queue PDU %s: %w", eventID, err)
	}
	defer rows.Close()
	added := map[string]int{}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("queue PDU %s: %w", eventID, err)
		}
		added[d]++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue PDU %s: %w", eventID, err)
	}
	return added, nil
}

// queueEDU stores one EDU, replacing a waiting one with the same coalesce
// key; it returns the change of the destination's EDU count.
func (st *store) queueEDU(ctx context.Context, tx *sqlutil.Tx, e queuedEDU) (int, error) {
	delta := 1
	if e.key != "" {
		res, err := tx.ExecContext(ctx, `DELETE FROM fs_queue_edus WHERE destination = $1 AND coalesce_key = $2 AND txn_id = ''`,
			e.destination, e.key)
		if err != nil {
			return 0, fmt.Errorf("replace queued %s: %w", e.eduType, err)
		}
		n, _ := res.RowsAffected()
		delta -= int(n)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO fs_queue_edus (destination, edu_type, coalesce_key, content) VALUES ($1, $2, $3, $4)`,
		e.destination, e.eduType, e.key, string(e.content))
	if err != nil {
		return 0, fmt.Errorf("queue %s for %s: %w", e.eduType, e.destination, err)
	}
	return delta, nil
}

// pendingTxn reads the transaction begun for dest, nil when there is
// none.
func (st *store) pendingTxn(ctx context.Context, dest string) (*pendingTxn, error) {
	var id string
	err := st.db.QueryRowContext(ctx, `SELECT txn_id FROM fs_queue_pdus WHERE destination = $1 AND txn_id <> '' LIMIT 1`, dest).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = st.db.QueryRowContext(ctx, `SELECT txn_id FROM fs_queue_edus WHERE destination = $1 AND txn_id <> '' LIMIT 1`, dest).Scan(&id)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pending transaction of %s: %w", dest, err)
	}
	return st.readTxn(ctx, st.db, dest, id)
}

// beginTxn puts the oldest waiting PDUs and EDUs of dest into a new
// transaction id; nil when nothing waits.
func (st *store) beginTxn(ctx context.Context, dest, id string) (*pendingTxn, error) {
	var txn *pendingTxn
	err := st.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE fs_queue_pdus SET txn_id = $2 WHERE id IN (
			SELECT id FROM fs_queue_pdus WHERE destination = $1 AND txn_id = '' ORDER BY id LIMIT $3)`, dest, id, maxPDUsPerTxn)
		if err != nil {
			return fmt.Errorf("begin transaction for %s: %w", dest, err)
		}
		npdus, _ := res.RowsAffected()
		res, err = tx.ExecContext(ctx, `UPDATE fs_queue_edus SET txn_id = $2 WHERE id IN (
			SELECT id FROM fs_queue_edus WHERE destination = $1 AND txn_id = '' ORDER BY id LIMIT $3)`, dest, id, maxEDUsPerTxn)
		if err != nil {
			return fmt.Errorf("begin transaction for %s: %w", dest, err)
		}
		nedus, _ := res.RowsAffected()
		if npdus+nedus == 0 {
			return nil
		}
		txn, err = st.readTxn(ctx, tx, dest, id)
		return err
	})
	return txn, err
}

// readTxn reads the PDUs and EDUs of transaction id, in queue order.
func (st *store) readTxn(ctx context.Context, q sqlutil.Querier, dest, id string) (*pendingTxn, error) {
	txn := &pendingTxn{id: id, pdus: []json.RawMessage{}}
	rows, err := q.QueryContext(ctx, `SELECT j.event_json FROM fs_queue_pdus q JOIN fs_pdu_json j ON j.event_nid = q.event_nid
		WHERE q.destination = $1 AND q.txn_id = $2 ORDER BY q.id`, dest, id)
	if err != nil {
		return nil, fmt.Errorf("read transaction %s: %w", id, err)
	}
	for rows.Next() {
		var js string
		if err := rows.Scan(&js); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read transaction %s: %w", id, err)
		}
		txn.pdus = append(txn.pdus, json.RawMessage(js))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read transaction %s: %w", id, err)
	}
	rows, err = q.QueryContext(ctx, `SELECT edu_type, content FROM fs_queue_edus WHERE destination = $1 AND txn_id = $2 ORDER BY id`, dest, id)
	if err != nil {
		return nil, fmt.Errorf("read transaction %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ, content string
		if err := rows.Scan(&typ, &content); err != nil {
			return nil, fmt.Errorf("read transaction %s: %w", id, err)
		}
		txn.edus = append(txn.edus, gomatrixserverlib.EDU{Type: typ, Content: []byte(content)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read transaction %s: %w", id, err)
	}
	return txn, nil
}

// finishTxn removes a sent transaction's rows (and the PDUs no other
// destination waits for) and records the success; it returns the PDU
// and EDU rows removed.
func (st *store) finishTxn(ctx context.Context, dest, id string, nowMS int64) (pdus, edus int, err error) {
	err = st.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		nids, err := queuedNIDs(ctx, tx, `DELETE FROM fs_queue_pdus WHERE destination = $1 AND txn_id = $2 RETURNING event_nid`, dest, id)
		if err != nil {
			return err
		}
		pdus = len(nids)
		if edus, err = execCount(ctx, tx, `DELETE FROM fs_queue_edus WHERE destination = $1 AND txn_id = $2`, dest, id); err != nil {
			return err
		}
		if err := deleteUnqueuedPDUs(ctx, tx, nids); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO fs_destinations (server_name, failures, retry_at_ms, last_success_ms, last_txn_id)
			VALUES ($1, 0, 0, $2, $3)
			ON CONFLICT (server_name) DO UPDATE SET failures = 0, retry_at_ms = 0,
				last_success_ms = excluded.last_success_ms, last_txn_id = excluded.last_txn_id`, dest, nowMS, id)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("finish transaction %s for %s: %w", id, dest, err)
	}
	return pdus, edus, nil
}

// setBackoff records a destination's failures.
func (st *store) setBackoff(ctx context.Context, dest string, failures int, retryAtMS int64) error {
	_, err := st.db.ExecContext(ctx, `INSERT INTO fs_destinations (server_name, failures, retry_at_ms) VALUES ($1, $2, $3)
		ON CONFLICT (server_name) DO UPDATE SET failures = excluded.failures, retry_at_ms = excluded.retry_at_ms`,
		dest, failures, retryAtMS)
	if err != nil {
		return fmt.Errorf("record back-off of %s: %w", dest, err)
	}
	return nil
}

// dropDestination empties a destination's queues (a server no longer
// allowed); it returns the rows removed.
func (st *store) dropDestination(ctx context.Context, dest string) (int, error) {
	var n int
	err := st.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		nids, err := queuedNIDs(ctx, tx, `DELETE FROM fs_queue_pdus WHERE destination = $1 RETURNING event_nid`, dest)
		if err != nil {
			return err
		}
		edus, err := execCount(ctx, tx, `DELETE FROM fs_queue_edus WHERE destination = $1`, dest)
		if err != nil {
			return err
		}
		n = len(nids) + edus
		return deleteUnqueuedPDUs(ctx, tx, nids)
	})
	if err != nil {
		return 0, fmt.Errorf("drop queue of %s: %w", dest, err)
	}
	return n, nil
}

// queuedNIDs runs a statement that returns event NIDs of queue rows.
func queuedNIDs(ctx context.Context, tx *sqlutil.Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read queued PDUs: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var nid int64
		if err := rows.Scan(&nid); err != nil {
			return nil, fmt.Errorf("read queued PDUs: %w", err)
		}
		out = append(out, nid)
	}
	return out, rows.Err()
}

// deleteUnqueuedPDUs deletes the PDUs among nids that no queue row
// references any more, in one statement per chunk (bounded parameters).
func deleteUnqueuedPDUs(ctx context.Context, tx *sqlutil.Tx, nids []int64) error {
	const chunk = 500
	for len(nids) > 0 {
		n := min(len(nids), chunk)
		marks := make([]string, n)
		args := make([]any, n)
		for i, nid := range nids[:n] {
			marks[i], args[i] = fmt.Sprintf("$%d", i+1), nid
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM fs_pdu_json WHERE event_nid IN (`+strings.Join(marks, ", ")+`)
			AND NOT EXISTS (SELECT 1 FROM fs_queue_pdus q WHERE q.event_nid = fs_pdu_json.event_nid)`, args...)
		if err != nil {
			return fmt.Errorf("delete sent PDUs: %w", err)
		}
		nids = nids[n:]
	}
	return nil
}

func execCount(ctx context.Context, tx *sqlutil.Tx, query string, args ...any) (int, error) {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
