package roomserver

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// dagEvent is what input knows of an event of the room: a stored row, or
// an event of the request being applied once it is stored.
type dagEvent struct {
	nid        int64
	id         string
	roomNID    int64
	evType     string
	stateKey   *string
	membership string // of a member event
	depth      int64
	pos        int64
	rejected   bool
	outlier    bool
	softFailed bool
	// The state before and after the event in DAG terms (0 when unknown:
	// outliers and rejected events).
	snapBefore, snapAfter int64
	after                 *stateView // the state after, once loaded or computed
}

func (d *dagEvent) key() (stateKey, bool) {
	if d.stateKey == nil {
		return stateKey{}, false
	}
	return stateKey{d.evType, *d.stateKey}, true
}

const dagEventSelect = `SELECT event_nid, event_id, room_nid, type, state_key, membership, depth, stream_pos, rejected, outlier,
	soft_failed, snapshot_before_nid, snapshot_nid FROM rs_events `

func scanDAGEvents(rows *sql.Rows, fn func(d *dagEvent)) error {
	defer rows.Close()
	for rows.Next() {
		d := &dagEvent{}
		var sk, membership sql.NullString
		if err := rows.Scan(&d.nid, &d.id, &d.roomNID, &d.evType, &sk, &membership, &d.depth, &d.pos, &d.rejected, &d.outlier,
			&d.softFailed, &d.snapBefore, &d.snapAfter); err != nil {
			return fmt.Errorf("scan event: %w", err)
		}
		d.membership = membership.String
		if sk.Valid {
			d.stateKey = &sk.String
		}
		fn(d)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	return nil
}

// idChunkSizes are the sizes of the IN lists of queries by event ID; a
// last chunk is padded to the smallest that holds it, so the statement
// texts stay few.
var idChunkSizes = []int{8, 32, 128}

// inChunks calls fn for each chunk of values with the IN list of
// placeholders (numbered from first) and the padded arguments. pad is a
// value that matches nothing.
func inChunks[T any](values []T, first int, pad T, fn func(list string, args []any) error) error {
	maxSize := idChunkSizes[len(idChunkSizes)-1]
	for start := 0; start < len(values); start += maxSize {
		chunk := values[start:min(start+maxSize, len(values))]
		size := maxSize
		for _, n := range idChunkSizes {
			if len(chunk) <= n {
				size = n
				break
			}
		}
		args := make([]any, size)
		for i := range size {
			args[i] = pad
			if i < len(chunk) {
				args[i] = chunk[i]
			}
		}
		if err := fn(placeholders(first, size), args); err != nil {
			return err
		}
	}
	return nil
}

// lookupEvents loads the stored events among ids, whatever their room and
// flags, into known (events already there are not read again).
func lookupEvents(ctx context.Context, q sqlutil.Querier, ids []string, known map[string]*dagEvent) error {
	var want []string
	seen := map[string]bool{}
	for _, id := range ids {
		if _, ok := known[id]; !ok && !seen[id] && id != "" {
			seen[id] = true
			want = append(want, id)
		}
	}
	return inChunks(want, 1, "", func(list string, args []any) error {
		rows, err := q.QueryContext(ctx, dagEventSelect+`WHERE event_id IN (`+list+`)`, args...)
		if err != nil {
			return fmt.Errorf("look up events: %w", err)
		}
		return scanDAGEvents(rows, func(d *dagEvent) { known[d.id] = d })
	})
}

// pduCache reads parsed events by nid for a writer: from the events it
// wrote itself (not visible to the pool yet, and not cached anywhere
// before they commit), then the roomserver's cache, then q.
type pduCache struct {
	rs      *Roomserver
	version gomatrixserverlib.IRoomVersion
	q       sqlutil.Querier
	own     map[int64]gomatrixserverlib.PDU
}

func newPDUCache(rs *Roomserver, version gomatrixserverlib.IRoomVersion, q sqlutil.Querier) *pduCache {
	return &pduCache{rs: rs, version: version, q: q, own: map[int64]gomatrixserverlib.PDU{}}
}

func (c *pduCache) get(ctx context.Context, nid int64) (gomatrixserverlib.PDU, error) {
	if ev, ok := c.own[nid]; ok {
		return ev, nil
	}
	if ev, ok := c.rs.events.get(nid); ok {
		return ev, nil
	}
	out, err := c.load(ctx, []int64{nid})
	if err != nil {
		return nil, err
	}
	if out[nid] == nil {
		return nil, fmt.Errorf("event %d is not stored", nid)
	}
	return out[nid], nil
}

// getAll returns the parsed events of nids, reading the missing ones in a
// few queries.
func (c *pduCache) getAll(ctx context.Context, nids []int64) (map[int64]gomatrixserverlib.PDU, error) {
	out := make(map[int64]gomatrixserverlib.PDU, len(nids))
	var missing []int64
	for _, nid := range nids {
		if ev, ok := c.own[nid]; ok {
			out[nid] = ev
		} else if ev, ok := c.rs.events.get(nid); ok {
			out[nid] = ev
		} else {
			missing = append(missing, nid)
		}
	}
	loaded, err := c.load(ctx, missing)
	if err != nil {
		return nil, err
	}
	for nid, ev := range loaded {
		out[nid] = ev
	}
	return out, nil
}

// load reads and parses stored events into own: read inside a
// transaction, they may not be committed yet (flush caches them once they
// are).
func (c *pduCache) load(ctx context.Context, nids []int64) (map[int64]gomatrixserverlib.PDU, error) {
	out := make(map[int64]gomatrixserverlib.PDU, len(nids))
	err := inChunks(nids, 1, int64(0), func(list string, args []any) error {
		rows, err := c.q.QueryContext(ctx, `SELECT event_nid, event_id, json, redacted FROM rs_events WHERE event_nid IN (`+list+`)`, args...)
		if err != nil {
			return fmt.Errorf("load events: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				nid      int64
				id       string
				data     []byte
				redacted bool
			)
			if err := rows.Scan(&nid, &id, &data, &redacted); err != nil {
				return fmt.Errorf("scan event: %w", err)
			}
			ev, err := parseStored(c.version, id, data, redacted)
			if err != nil {
				return err
			}
			out[nid] = ev
			c.own[nid] = ev
		}
		return rows.Err()
	})
	return out, err
}

// flush puts the state events read or written into the roomserver's
// cache, once the transaction that wrote them has committed.
func (c *pduCache) flush() {
	for nid, ev := range c.own {
		if ev.StateKey() != nil {
			c.rs.events.put(nid, ev)
		}
	}
}

// parseStored parses a stored event, redacted as it was.
func parseStored(version gomatrixserverlib.IRoomVersion, eventID string, data []byte, redacted bool) (gomatrixserverlib.PDU, error) {
	if redacted {
		var err error
		if data, err = version.RedactEventJSON(data); err != nil {
			return nil, fmt.Errorf("redact event %s: %w", eventID, err)
		}
	}
	ev, err := version.NewEventFromTrustedJSONWithEventID(eventID, data, redacted)
	if err != nil {
		return nil, fmt.Errorf("parse event %s: %w", eventID, err)
	}
	return ev, nil
}
