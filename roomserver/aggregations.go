package roomserver

import (
	"context"
	"encoding/json"
	"fmt"
)

// Bundled aggregations (unsigned["m.relations"]) of the spec's "Event
// relationships" module:
//
//   - m.thread: the thread's latest event, its number of replies and
//     whether the reading user took part (wrote the root or a reply);
//   - m.replace: the latest edit by the original sender (by
//     origin_server_ts, then event ID); the content is not replaced, as
//     the spec asks from v1.7;
//   - m.reference: the IDs of the referencing events.
//
// Annotations (reactions) are not aggregated, as the spec allows from v1.7.
// Redacted events get no aggregations.

// idChunk is how many parent IDs one aggregation query takes; the list is
// padded so the statement text never changes.
const idChunk = 64

type threadSummary struct {
	count        int
	latestPos    int64
	participated bool
}

type relationRow struct {
	parent, relType, eventID, sender string
	nid, ts                          int64
}

// bundle adds the bundled aggregations to evs, as userID sees them ("":
// a reader that does not know who reads, such as syncapi's, for which
// current_user_participated only reflects the thread root's sender).
func (r *reader) bundle(ctx context.Context, room roomInfo, userID string, evs []*ClientEvent) error {
	var ids []string
	byID := map[string]*ClientEvent{}
	for _, ev := range evs {
		if ev.StateKey != nil || isRedactedClientEvent(ev) {
			continue
		}
		ids = append(ids, ev.EventID)
		byID[ev.EventID] = ev
	}
	if len(ids) == 0 {
		return nil
	}
	threads, rows, err := r.relationsOf(ctx, room, userID, ids)
	if err != nil {
		return err
	}
	agg := map[string]map[string]any{}
	add := func(id, key string, v any) {
		if agg[id] == nil {
			agg[id] = map[string]any{}
		}
		agg[id][key] = v
	}
	for id, t := range threads {
		latest, err := r.eventAtPos(ctx, room, t.latestPos)
		if err != nil {
			return err
		}
		if latest == nil {
			continue
		}
		add(id, "m.thread", map[string]any{
			"latest_event":              latest,
			"count":                     t.count,
			"current_user_participated": t.participated || (userID != "" && byID[id].Sender == userID),
		})
	}
	edits := map[string]relationRow{}
	refs := map[string][]map[string]string{}
	for _, row := range rows {
		switch row.relType {
		case "m.replace":
			if row.sender != byID[row.parent].Sender {
				continue // only the original sender may edit
			}
			if best, ok := edits[row.parent]; !ok || row.ts > best.ts || (row.ts == best.ts && row.eventID > best.eventID) {
				edits[row.parent] = row
			}
		case "m.reference":
			refs[row.parent] = append(refs[row.parent], map[string]string{"event_id": row.eventID})
		}
	}
	for id, chunk := range refs {
		add(id, "m.reference", map[string]any{"chunk": chunk})
	}
	if len(edits) > 0 {
		nids := make([]int64, 0, len(edits))
		for _, row := range edits {
			nids = append(nids, row.nid)
		}
		stored, err := r.eventsByNID(ctx, nids)
		if err != nil {
			return err
		}
		for i := range stored {
			ce, err := stored[i].clientEvent(room)
			if err != nil {
				return err
			}
			for parent, row := range edits {
				if row.nid == stored[i].nid {
					add(parent, "m.replace", ce)
				}
			}
		}
	}
	for id, relations := range agg {
		if err := setUnsigned(byID[id], "m.relations", relations); err != nil {
			return err
		}
	}
	return nil
}

// relationsOf reads the thread summaries and the edits and references of
// the given parents.
func (r *reader) relationsOf(ctx context.Context, room roomInfo, userID string, ids []string) (map[string]*threadSummary, []relationRow, error) {
	threads := map[string]*threadSummary{}
	var rows []relationRow
	for start := 0; start < len(ids); start += idChunk {
		chunk := padIDs(ids[start:min(start+idChunk, len(ids))])
		args := append([]any{room.nid, userID}, chunk...)
		res, err := r.db.QueryContext(ctx, `SELECT relates_to_id, COUNT(*), MAX(stream_pos),
			MAX(CASE WHEN sender = $2 THEN 1 ELSE 0 END)
			FROM rs_relations WHERE room_nid = $1 AND rel_type = 'm.thread'
			AND relates_to_id IN (`+placeholders(3, idChunk)+`) GROUP BY relates_to_id`, args...)
		if err != nil {
			return nil, nil, fmt.Errorf("thread summaries: %w", err)
		}
		for res.Next() {
			var id string
			var t threadSummary
			var mine int
			if err := res.Scan(&id, &t.count, &t.latestPos, &mine); err != nil {
				res.Close()
				return nil, nil, fmt.Errorf("scan thread summary: %w", err)
			}
			t.participated = mine == 1
			threads[id] = &t
		}
		res.Close()
		if err := res.Err(); err != nil {
			return nil, nil, fmt.Errorf("thread summaries: %w", err)
		}
		res, err = r.db.QueryContext(ctx, `SELECT relates_to_id, rel_type, event_id, sender, event_nid, origin_server_ts
			FROM rs_relations WHERE room_nid = $1 AND rel_type IN ('m.replace', 'm.reference')
			AND relates_to_id IN (`+placeholders(2, idChunk)+`) ORDER BY stream_pos`, append([]any{room.nid}, chunk...)...)
		if err != nil {
			return nil, nil, fmt.Errorf("edits and references: %w", err)
		}
		for res.Next() {
			var row relationRow
			if err := res.Scan(&row.parent, &row.relType, &row.eventID, &row.sender, &row.nid, &row.ts); err != nil {
				res.Close()
				return nil, nil, fmt.Errorf("scan relation: %w", err)
			}
			rows = append(rows, row)
		}
		res.Close()
		if err := res.Err(); err != nil {
			return nil, nil, fmt.Errorf("edits and references: %w", err)
		}
	}
	return threads, rows, nil
}

// padIDs pads a chunk of IDs to idChunk with "" (no event has that ID).
func padIDs(ids []string) []any {
	out := make([]any, idChunk)
	for i := range out {
		out[i] = ""
		if i < len(ids) {
			out[i] = ids[i]
		}
	}
	return out
}

// eventAtPos loads the event at a stream position, in client form (nil if
// there is none).
func (r *reader) eventAtPos(ctx context.Context, room roomInfo, pos int64) (*ClientEvent, error) {
	rows, err := r.db.QueryContext(ctx, eventSelect+`WHERE e.stream_pos = $1 AND e.room_nid = $2 AND `+timelineEvent, pos, room.nid)
	if err != nil {
		return nil, fmt.Errorf("event at %d: %w", pos, err)
	}
	stored, err := scanEvents(rows)
	if err != nil || len(stored) == 0 {
		return nil, err
	}
	ce, err := stored[0].clientEvent(room)
	if err != nil {
		return nil, err
	}
	return &ce, nil
}

func isRedactedClientEvent(ev *ClientEvent) bool {
	if len(ev.Unsigned) == 0 {
		return false
	}
	var u map[string]json.RawMessage
	if json.Unmarshal(ev.Unsigned, &u) != nil {
		return false
	}
	_, ok := u["redacted_because"]
	return ok
}

// setUnsigned sets one key of an event's unsigned object.
func setUnsigned(ev *ClientEvent, key string, v any) error {
	u := map[string]json.RawMessage{}
	if len(ev.Unsigned) > 0 {
		if err := json.Unmarshal(ev.Unsigned, &u); err != nil {
			return fmt.Errorf("unsigned of %s: %w", ev.EventID, err)
		}
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s of %s: %w", key, ev.EventID, err)
	}
	u[key] = data
	if ev.Unsigned, err = json.Marshal(u); err != nil {
		return fmt.Errorf("encode unsigned of %s: %w", ev.EventID, err)
	}
	return nil
}
