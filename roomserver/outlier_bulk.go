package roomserver

import (
	"context"
	"fmt"
	"strings"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Bulk writes for a joined room's state (outlier_join.go): thousands of
// rows go in multi-row statements. A statement has one of bulkRowSizes
// rows, so few statement texts exist.
var bulkRowSizes = []int{64, 16, 4, 1}

// inRowChunks splits n rows into chunks of bulkRowSizes rows and calls fn
// with each chunk's bounds.
func inRowChunks(n int, fn func(from, to int) error) error {
	for from := 0; from < n; {
		size := 1
		for _, s := range bulkRowSizes {
			if n-from >= s {
				size = s
				break
			}
		}
		if err := fn(from, from+size); err != nil {
			return err
		}
		from += size
	}
	return nil
}

// valuesList is "($1, $2, …, tail), (…)" for rows of cols parameters
// each, followed by tail (constants) when it is not empty.
func valuesList(rows, cols int, tail string) string {
	var sb strings.Builder
	for r := range rows {
		if r > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(" + placeholders(r*cols+1, cols))
		if tail != "" {
			sb.WriteString(", " + tail)
		}
		sb.WriteString(")")
	}
	return sb.String()
}

// insertEventRows stores rows in multi-row statements and sets their
// nids.
func insertEventRows(ctx context.Context, tx *sqlutil.Tx, roomNID int64, rows []*eventRow) error {
	const cols = 19
	return inRowChunks(len(rows), func(from, to int) error {
		chunk := rows[from:to]
		args := make([]any, 0, len(chunk)*cols)
		byID := make(map[string]*eventRow, len(chunk))
		for _, r := range chunk {
			args = append(args, r.values(roomNID)...)
			byID[r.pdu.EventID()] = r
		}
		res, err := tx.QueryContext(ctx, `INSERT INTO rs_events (`+eventRowColumns+`) VALUES `+valuesList(len(chunk), cols, "")+
			` RETURNING event_nid, event_id`, args...)
		if err != nil {
			return fmt.Errorf("store events: %w", err)
		}
		defer res.Close()
		for res.Next() {
			var (
				nid int64
				id  string
			)
			if err := res.Scan(&nid, &id); err != nil {
				return fmt.Errorf("scan stored event: %w", err)
			}
			if r := byID[id]; r != nil {
				r.nid = nid
			}
		}
		return res.Err()
	})
}

// edge is an rs_event_edges row.
type edge struct {
	nid    int64
	prevID string
}

// insertEdgeRows records prev_events in multi-row statements.
func insertEdgeRows(ctx context.Context, tx *sqlutil.Tx, edges []edge) error {
	return inRowChunks(len(edges), func(from, to int) error {
		args := make([]any, 0, 2*(to-from))
		for _, e := range edges[from:to] {
			args = append(args, e.nid, e.prevID)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO rs_event_edges (event_nid, prev_event_id) VALUES `+valuesList(to-from, 2, "")+
			` ON CONFLICT (event_nid, prev_event_id) DO NOTHING`, args...)
		if err != nil {
			return fmt.Errorf("record prev events: %w", err)
		}
		return nil
	})
}

// memberRow is an rs_membership row.
type memberRow struct {
	userID, membership string
	nid, pos           int64
}

// upsertMembers sets the current membership of many users of a room.
func upsertMembers(ctx context.Context, tx *sqlutil.Tx, roomNID int64, rows []memberRow) error {
	const cols = 6
	return inRowChunks(len(rows), func(from, to int) error {
		args := make([]any, 0, (to-from)*cols)
		for _, r := range rows[from:to] {
			args = append(args, roomNID, r.userID, r.membership, r.nid, r.pos, r.pos)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO rs_membership (room_nid, user_id, membership, event_nid, stream_pos, joined_since)
			VALUES `+valuesList(to-from, cols, "")+`
			`+membershipUpsert, args...)
		if err != nil {
			return fmt.Errorf("store memberships: %w", err)
		}
		return nil
	})
}
