package roomserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// federationReader implements FederationReader on the roomserver's
// tables. Like the EventReader it only reads, so the federation holds one
// on the shared database in whatever process it runs.
type federationReader struct {
	r     *reader
	views *lru[viewKey, serverView] // what states say of servers (visibility_server.go)
}

// NewFederationReader reads what the federation serves from db.
func NewFederationReader(db *sqlutil.DB) FederationReader {
	return &federationReader{r: newReader(db), views: newLRU[viewKey, serverView](8192)}
}

var _ FederationReader = (*federationReader)(nil)

// pduSelect reads events as federation sends them, with the room's version
// to redact and parse them.
var pduSelect = `SELECT e.event_nid, e.event_id, r.room_id, r.version, e.json, e.depth, e.rejected, e.redacted, ` + isOutlier("e") + `
FROM rs_events e JOIN rs_rooms r ON r.room_nid = e.room_nid
`

// isOutlier tells whether the rs_events row t is an outlier: stored for
// its own sake, without state nor prev_events edges.
func isOutlier(t string) string { return t + `.outlier` }

// pduRow is a row of pduSelect: the PDU to send (redacted when the event
// was) and what walking the DAG needs from the original.
type pduRow struct {
	nid     int64
	pdu     StoredPDU
	version gomatrixserverlib.IRoomVersion
	links   dagLinks
}

// dagLinks are the fields of a PDU that link it into the room's DAG.
type dagLinks struct {
	Type       string          `json:"type"`
	AuthEvents json.RawMessage `json:"auth_events"`
	PrevEvents json.RawMessage `json:"prev_events"`
}

func scanPDUs(rows *sql.Rows) ([]pduRow, error) {
	defer rows.Close()
	var out []pduRow
	for rows.Next() {
		var (
			row      pduRow
			version  string
			data     []byte
			redacted bool
		)
		p := &row.pdu
		if err := rows.Scan(&row.nid, &p.EventID, &p.RoomID, &version, &data, &p.Depth, &p.Rejected, &redacted, &p.Outlier); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(version))
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", p.EventID, err)
		}
		row.version, p.RoomVersion = v, version
		if err := json.Unmarshal(data, &row.links); err != nil {
			return nil, fmt.Errorf("decode event %s: %w", p.EventID, err)
		}
		p.JSON = data
		if redacted {
			if p.JSON, err = v.RedactEventJSON(data); err != nil {
				return nil, fmt.Errorf("redact event %s: %w", p.EventID, err)
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// authIDs are the event's auth events. In room version 12 the create event
// is implied by the room ID and never listed, yet it is in every auth
// chain: it is added here.
func (row *pduRow) authIDs() []string {
	ids := eventRefIDs(row.links.AuthEvents)
	if row.version.DomainlessRoomIDs() && row.links.Type != spec.MRoomCreate && strings.HasPrefix(row.pdu.RoomID, "!") {
		ids = append(ids, "$"+row.pdu.RoomID[1:])
	}
	return ids
}

// eventRefIDs reads prev_events or auth_events: event IDs from room
// version 3 on, [event ID, hashes] pairs in versions 1 and 2.
func eventRefIDs(raw json.RawMessage) []string {
	var ids []string
	if json.Unmarshal(raw, &ids) == nil {
		return ids
	}
	var pairs [][]json.RawMessage
	if json.Unmarshal(raw, &pairs) != nil {
		return nil
	}
	ids = nil // a failed decoding leaves entries behind
	for _, pair := range pairs {
		var id string
		if len(pair) > 0 && json.Unmarshal(pair[0], &id) == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

func pdusOf(rows []pduRow) []StoredPDU {
	out := make([]StoredPDU, len(rows))
	for i := range rows {
		out[i] = rows[i].pdu
	}
	return out
}

// pdusByID loads the stored events among ids, in no particular order. No
// event has the empty ID the lists are padded with.
func (f *federationReader) pdusByID(ctx context.Context, ids []string) ([]pduRow, error) {
	return pdusWhere(ctx, f, "e.event_id", ids, "")
}

// pdusByNID is pdusByID by event nid (no event has nid 0).
func (f *federationReader) pdusByNID(ctx context.Context, nids []int64) ([]pduRow, error) {
	return pdusWhere(ctx, f, "e.event_nid", nids, 0)
}

// pdusWhere loads the events whose column is among values, in chunks
// padded with pad.
func pdusWhere[T any](ctx context.Context, f *federationReader, column string, values []T, pad T) ([]pduRow, error) {
	var out []pduRow
	err := inChunks(values, 1, pad, func(list string, args []any) error {
		rows, err := f.r.db.QueryContext(ctx, pduSelect+`WHERE `+column+` IN (`+list+`)`, args...)
		if err != nil {
			return fmt.Errorf("load events: %w", err)
		}
		got, err := scanPDUs(rows)
		out = append(out, got...)
		return err
	})
	return out, err
}

func (f *federationReader) RoomVersion(ctx context.Context, roomID string) (string, bool, error) {
	room, ok, err := f.r.room(ctx, roomID)
	if err != nil || !ok {
		return "", false, err
	}
	return string(room.version.Version()), true, nil
}

func (f *federationReader) Events(ctx context.Context, eventIDs []string, withRejected bool) ([]StoredPDU, error) {
	rows, err := f.pdusByID(ctx, dedupe(eventIDs))
	if err != nil {
		return nil, err
	}
	if !withRejected {
		rows = slices.DeleteFunc(rows, func(r pduRow) bool { return r.pdu.Rejected })
	}
	return pdusOf(rows), nil
}

func (f *federationReader) StateBefore(ctx context.Context, roomID, eventID string) ([]string, []string, error) {
	var (
		snapshot          int64
		outlier, rejected bool
	)
	err := f.r.db.QueryRowContext(ctx, `SELECT e.snapshot_before_nid, `+isOutlier("e")+`, e.rejected
		FROM rs_events e JOIN rs_rooms r ON r.room_nid = e.room_nid
		WHERE e.event_id = $1 AND r.room_id = $2`, eventID, roomID).Scan(&snapshot, &outlier, &rejected)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, mxerr.NotFound("event %s not found in room %s", eventID, roomID)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("look up event %s: %w", eventID, err)
	}
	if outlier || rejected {
		// An outlier's state was never computed, a rejected event has none.
		return nil, nil, mxerr.NotFound("the state at event %s is not known", eventID)
	}
	state, err := f.r.snapshots.state(ctx, snapshot)
	if err != nil {
		return nil, nil, err
	}
	nids := make([]int64, 0, len(state))
	for _, nid := range state {
		nids = append(nids, nid)
	}
	stateRows, err := f.pdusByNID(ctx, nids)
	if err != nil {
		return nil, nil, err
	}
	chain, err := f.authChain(ctx, stateRows)
	if err != nil {
		return nil, nil, err
	}
	stateIDs := make([]string, 0, len(stateRows))
	inState := make(map[string]bool, len(stateRows))
	for _, row := range stateRows {
		stateIDs = append(stateIDs, row.pdu.EventID)
		inState[row.pdu.EventID] = true
	}
	chainIDs := make([]string, 0, len(chain))
	for _, row := range chain {
		if !inState[row.pdu.EventID] {
			chainIDs = append(chainIDs, row.pdu.EventID)
		}
	}
	sort.Strings(stateIDs)
	sort.Strings(chainIDs)
	return stateIDs, chainIDs, nil
}

func (f *federationReader) AuthChain(ctx context.Context, eventIDs []string) ([]StoredPDU, error) {
	start, err := f.pdusByID(ctx, dedupe(eventIDs))
	if err != nil {
		return nil, err
	}
	chain, err := f.authChain(ctx, start)
	if err != nil {
		return nil, err
	}
	return pdusOf(chain), nil
}

// authChain walks auth_events from the start events, a level at a time
// with one query per level (per chunk), and returns every stored event
// reached once: the start events only when another's auth event. Auth
// events that are not stored are skipped.
func (f *federationReader) authChain(ctx context.Context, start []pduRow) ([]pduRow, error) {
	loaded := make(map[string]pduRow, len(start))
	for _, row := range start {
		loaded[row.pdu.EventID] = row
	}
	queued := map[string]bool{}
	var frontier []string
	push := func(row pduRow) {
		for _, id := range row.authIDs() {
			if !queued[id] {
				queued[id] = true
				frontier = append(frontier, id)
			}
		}
	}
	for _, row := range start {
		push(row)
	}
	var chain []pduRow
	for len(frontier) > 0 {
		level := frontier
		frontier = nil
		var toLoad []string
		for _, id := range level {
			if row, ok := loaded[id]; ok {
				chain = append(chain, row)
				push(row)
			} else {
				toLoad = append(toLoad, id)
			}
		}
		rows, err := f.pdusByID(ctx, toLoad)
		if err != nil {
			return nil, err
		}
		for _, row := range rows {
			chain = append(chain, row)
			push(row)
		}
	}
	return chain, nil
}

// walkSQL walks the DAG back through rs_event_edges from {start}, staying
// in the room ($1), at or above a depth ($2), around rejected events and
// the events of {stops}, and returns the $3 deepest events reached.
var walkSQL = `WITH RECURSIVE walk (event_nid) AS (
	{start}
	UNION
	SELECT p.event_nid FROM walk w
	JOIN rs_event_edges ed ON ed.event_nid = w.event_nid
	JOIN rs_events p ON p.event_id = ed.prev_event_id
	WHERE p.room_nid = $1 AND p.depth >= $2 AND p.rejected = FALSE AND p.event_id NOT IN ({stops})
)
` + pduSelect + `WHERE e.event_nid IN (SELECT event_nid FROM walk)
ORDER BY e.depth DESC, e.event_nid DESC LIMIT $3`

// The walk starts at the {seeds} themselves (backfill) or at their
// prev_events (missing events).
const (
	walkFromSeeds = `SELECT event_nid FROM rs_events WHERE event_nid IN ({seeds})`
	walkFromPrevs = `SELECT p.event_nid FROM rs_event_edges ed JOIN rs_events p ON p.event_id = ed.prev_event_id
	WHERE ed.event_nid IN ({seeds}) AND p.room_nid = $1 AND p.depth >= $2 AND p.rejected = FALSE AND p.event_id NOT IN ({stops})`
)

// dagWalk is a walk back through a room's DAG.
type dagWalk struct {
	room      roomInfo
	seeds     []int64
	fromPrevs bool     // start at the seeds' prev_events rather than the seeds
	stops     []string // events not returned nor walked through
	minDepth  int64
	limit     int
}

// run returns the walk's limit deepest events, deepest first.
//
// When depths are consistent (an event's depth is one more than its
// deepest prev_event), an event among the limit deepest ancestors is
// reached only through deeper ones, so the answer is the same as walking
// by decreasing depth one event at a time; minDepth (set by the caller
// from the seeds' depths) bounds how far the query looks.
func (w *dagWalk) run(ctx context.Context, f *federationReader) ([]pduRow, error) {
	// The stop list is one IN list (padded with an ID no event has), the
	// seeds as many as it takes.
	stops := w.stops
	if len(stops) == 0 {
		stops = []string{""}
	}
	if maxList := idChunkSizes[len(idChunkSizes)-1]; len(stops) > maxList {
		return nil, mxerr.InvalidParam("too many event IDs (at most %d)", maxList)
	}
	var stopList string
	var stopArgs []any
	_ = inChunks(stops, 4, "", func(list string, args []any) error {
		stopList, stopArgs = list, args
		return nil
	})
	start := walkFromSeeds
	if w.fromPrevs {
		start = walkFromPrevs
	}
	var out []pduRow
	seen := map[int64]bool{}
	err := inChunks(w.seeds, 4+len(stopArgs), int64(0), func(seedList string, seedArgs []any) error {
		query := strings.NewReplacer("{seeds}", seedList, "{stops}", stopList).Replace(strings.Replace(walkSQL, "{start}", start, 1))
		args := slices.Concat([]any{w.room.nid, w.minDepth, w.limit}, stopArgs, seedArgs)
		rows, err := f.r.db.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("walk the events of %s: %w", w.room.id, err)
		}
		got, err := scanPDUs(rows)
		for _, row := range got {
			if !seen[row.nid] {
				seen[row.nid] = true
				out = append(out, row)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].pdu.Depth != out[j].pdu.Depth {
			return out[i].pdu.Depth > out[j].pdu.Depth
		}
		return out[i].nid > out[j].nid
	})
	return out[:min(len(out), w.limit)], nil
}

// seedsIn finds the events among ids stored in the room and not rejected:
// their nids and the least depth.
func (f *federationReader) seedsIn(ctx context.Context, room roomInfo, ids []string) ([]int64, int64, error) {
	var (
		nids     []int64
		minDepth int64
	)
	err := inChunks(dedupe(ids), 2, "", func(list string, args []any) error {
		rows, err := f.r.db.QueryContext(ctx, `SELECT event_nid, depth FROM rs_events
			WHERE room_nid = $1 AND rejected = FALSE AND event_id IN (`+list+`)`, append([]any{room.nid}, args...)...)
		if err != nil {
			return fmt.Errorf("look up events of %s: %w", room.id, err)
		}
		defer rows.Close()
		for rows.Next() {
			var nid, depth int64
			if err := rows.Scan(&nid, &depth); err != nil {
				return fmt.Errorf("scan event: %w", err)
			}
			if len(nids) == 0 || depth < minDepth {
				minDepth = depth
			}
			nids = append(nids, nid)
		}
		return rows.Err()
	})
	return nids, minDepth, err
}

func (f *federationReader) Backfill(ctx context.Context, roomID string, fromIDs []string, limit int) ([]StoredPDU, error) {
	room, ok, err := f.r.room(ctx, roomID)
	if err != nil || !ok || limit <= 0 {
		return nil, err
	}
	seeds, least, err := f.seedsIn(ctx, room, fromIDs)
	if err != nil || len(seeds) == 0 {
		return nil, err
	}
	w := dagWalk{room: room, seeds: seeds, minDepth: least - int64(limit), limit: limit}
	rows, err := w.run(ctx, f)
	if err != nil {
		return nil, err
	}
	return pdusOf(rows), nil
}

func (f *federationReader) MissingEvents(ctx context.Context, roomID string, earliest, latest []string, limit int, minDepth int64) ([]StoredPDU, error) {
	room, ok, err := f.r.room(ctx, roomID)
	if err != nil || !ok || limit <= 0 {
		return nil, err
	}
	seeds, least, err := f.seedsIn(ctx, room, latest)
	if err != nil || len(seeds) == 0 {
		return nil, err
	}
	// The latest events are what the asking server has: never sent back.
	stops := dedupe(append(slices.Clone(earliest), latest...))
	w := dagWalk{room: room, seeds: seeds, fromPrevs: true, stops: stops, minDepth: max(minDepth, least-1-int64(limit)), limit: limit}
	rows, err := w.run(ctx, f)
	if err != nil {
		return nil, err
	}
	slices.Reverse(rows) // oldest first
	return pdusOf(rows), nil
}

func (f *federationReader) CurrentState(ctx context.Context, roomID, eventType, key string) (*StoredPDU, error) {
	room, ok, err := f.r.room(ctx, roomID)
	if err != nil || !ok {
		return nil, err
	}
	state, err := f.r.currentState(ctx, room)
	if err != nil {
		return nil, err
	}
	nid := state[stateKey{eventType, key}]
	if nid == 0 {
		return nil, nil
	}
	rows, err := f.pdusByNID(ctx, []int64{nid})
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return &rows[0].pdu, nil
}

func (f *federationReader) JoinedServers(ctx context.Context, roomID string) ([]string, error) {
	users, err := f.r.JoinedUsers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	return serversOf(users), nil
}

func (f *federationReader) JoinedServersBefore(ctx context.Context, roomID string, pos int64) ([]string, error) {
	users, err := sqlutil.Strings(ctx, f.r.db, `SELECT m.user_id FROM rs_membership m JOIN rs_rooms r ON r.room_nid = m.room_nid
		WHERE r.room_id = $1 AND m.membership = 'join' AND m.joined_since < $2`, roomID, pos)
	if err != nil {
		return nil, fmt.Errorf("servers joined to %s before %d: %w", roomID, pos, err)
	}
	return serversOf(users), nil
}

func (f *federationReader) ServerWasInRoom(ctx context.Context, roomID, server string) (bool, error) {
	// Most servers that ask are in the room: the current members answer
	// them without reading the room's history.
	for _, query := range []string{serverJoinedSQL, serverEverJoinedSQL} {
		if yes, err := hasMemberOf(ctx, f.r.db, query, roomID, server); err != nil || yes {
			return yes, err
		}
	}
	return false, nil
}

// The users of a server ($2, usersOfPattern) joined to a room ($1) now,
// and at some point.
const (
	serverJoinedSQL = `SELECT m.user_id FROM rs_membership m JOIN rs_rooms r ON r.room_nid = m.room_nid
		WHERE r.room_id = $1 AND m.membership = 'join' AND m.user_id LIKE $2 ESCAPE '\'`
	serverEverJoinedSQL = `SELECT DISTINCT e.state_key FROM rs_events e JOIN rs_rooms r ON r.room_nid = e.room_nid
		WHERE r.room_id = $1 AND e.membership = 'join' AND e.rejected = FALSE AND e.soft_failed = FALSE
			AND e.state_key LIKE $2 ESCAPE '\'`
)

// hasMemberOf runs one of the queries above and tells whether it found a
// user of server.
func hasMemberOf(ctx context.Context, db *sqlutil.DB, query, roomID, server string) (bool, error) {
	users, err := sqlutil.Strings(ctx, db, query, roomID, usersOfPattern(server))
	if err != nil {
		return false, fmt.Errorf("members of %s in %s: %w", server, roomID, err)
	}
	return slices.ContainsFunc(users, func(u string) bool { return domainOf(u) == server }), nil
}

// usersOfPattern is a LIKE pattern (escaped with \) that matches the user
// IDs of server. It narrows a scan; the caller checks each match with
// domainOf, as SQLite's LIKE ignores case.
func usersOfPattern(server string) string {
	return "%:" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(server)
}

func (f *federationReader) Extremities(ctx context.Context, roomID string) ([]string, error) {
	var raw string
	err := f.r.db.QueryRowContext(ctx, `SELECT extremities FROM rs_rooms WHERE room_id = $1`, roomID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("extremities of %s: %w", roomID, err)
	}
	var out []string
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return nil, fmt.Errorf("decode extremities of %s: %w", roomID, err)
	}
	return out, nil
}

func (f *federationReader) BackwardExtremities(ctx context.Context, roomID string) ([]string, error) {
	room, ok, err := f.r.room(ctx, roomID)
	if err != nil || !ok {
		return nil, err
	}
	// A prev_event stored as an outlier counts as missing: its own
	// prev_events, and so the history before it, are unknown.
	out, err := sqlutil.Strings(ctx, f.r.db, `SELECT DISTINCT e.event_id FROM rs_events e
		JOIN rs_event_edges ed ON ed.event_nid = e.event_nid
		WHERE e.room_nid = $1 AND e.rejected = FALSE AND NOT `+isOutlier("e")+`
			AND NOT EXISTS (SELECT 1 FROM rs_events p WHERE p.event_id = ed.prev_event_id AND NOT `+isOutlier("p")+`)
		ORDER BY e.event_id`, room.nid)
	if err != nil {
		return nil, fmt.Errorf("backward extremities of %s: %w", roomID, err)
	}
	return out, nil
}
