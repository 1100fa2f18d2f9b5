package roomserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// eventSelect reads stored events with what their client form needs: the
// state event each replaces (unsigned.prev_content) and the redaction that
// redacted it (unsigned.redacted_because), in one query.
const eventSelect = `SELECT e.event_nid, e.stream_pos, e.event_id, e.json, e.redacted, e.sender_device_id, e.txn_id,
	e.snapshot_before_nid, e.snapshot_nid, p.event_id, p.json, p.redacted, rb.event_id, rb.json
FROM rs_events e
LEFT JOIN rs_events p ON p.event_nid = e.replaces_nid
LEFT JOIN rs_events rb ON rb.event_nid = e.redacted_by_nid
`

// nidChunk is how many events are read per query when loading a state by
// event nids. A last chunk is padded to the smallest of nidChunkSizes that
// holds it, so the statement texts are few, and a handful of events (a
// lazy-loaded state) does not pay for parsing and binding 64 parameters.
const nidChunk = 64

var nidChunkSizes = []int{8, 32, nidChunk}

var eventsByNIDSQL = func() map[int]string {
	out := map[int]string{}
	for _, n := range nidChunkSizes {
		out[n] = eventSelect + `WHERE e.event_nid IN (` + placeholders(1, n) + `)`
	}
	return out
}()

func placeholders(from, n int) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("$" + strconv.Itoa(from+i))
	}
	return sb.String()
}

// storedEvent is a row of eventSelect.
type storedEvent struct {
	nid, pos        int64
	eventID         string
	json            []byte
	redacted        bool
	deviceID, txnID string
	snapshotBefore  int64
	snapshotAfter   int64
	prevID          sql.NullString
	prevJSON        []byte
	prevRedacted    sql.NullBool
	redactionID     sql.NullString
	redactionJSON   []byte
}

func scanEvents(rows *sql.Rows) ([]storedEvent, error) {
	defer rows.Close()
	var out []storedEvent
	for rows.Next() {
		var e storedEvent
		if err := rows.Scan(&e.nid, &e.pos, &e.eventID, &e.json, &e.redacted, &e.deviceID, &e.txnID,
			&e.snapshotBefore, &e.snapshotAfter, &e.prevID, &e.prevJSON, &e.prevRedacted, &e.redactionID, &e.redactionJSON); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// clientEvent converts a stored event, with its unsigned data.
func (e *storedEvent) clientEvent(room roomInfo) (ClientEvent, error) {
	ce, err := toClientEvent(room.version, room.id, e.eventID, e.json, e.redacted)
	if err != nil {
		return ce, err
	}
	unsigned := map[string]any{}
	if e.prevID.Valid {
		prev, err := toClientEvent(room.version, room.id, e.prevID.String, e.prevJSON, e.prevRedacted.Bool)
		if err != nil {
			return ce, err
		}
		unsigned["prev_content"] = prev.Content
		unsigned["prev_sender"] = prev.Sender
		unsigned["replaces_state"] = prev.EventID
	}
	if e.redacted && e.redactionID.Valid {
		because, err := toClientEvent(room.version, room.id, e.redactionID.String, e.redactionJSON, false)
		if err != nil {
			return ce, err
		}
		unsigned["redacted_because"] = because
	}
	if len(unsigned) > 0 {
		if ce.Unsigned, err = json.Marshal(unsigned); err != nil {
			return ce, fmt.Errorf("encode unsigned of %s: %w", e.eventID, err)
		}
	}
	return ce, nil
}

// eventsByNID loads events by nid, in no particular order.
func (r *reader) eventsByNID(ctx context.Context, nids []int64) ([]storedEvent, error) {
	out := make([]storedEvent, 0, len(nids))
	args := make([]any, nidChunk)
	for start := 0; start < len(nids); start += nidChunk {
		chunk := nids[start:min(start+nidChunk, len(nids))]
		size := nidChunk
		for _, n := range nidChunkSizes {
			if len(chunk) <= n {
				size = n
				break
			}
		}
		for i := range size {
			args[i] = int64(0) // no event has nid 0
			if i < len(chunk) {
				args[i] = chunk[i]
			}
		}
		rows, err := r.db.QueryContext(ctx, eventsByNIDSQL[size], args[:size]...)
		if err != nil {
			return nil, fmt.Errorf("load events: %w", err)
		}
		evs, err := scanEvents(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	return out, nil
}
