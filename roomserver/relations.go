package roomserver

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

const (
	maxRelationsLimit = 1000
	// maxRecursionDepth is how deep recurse=true follows relations of
	// relations (Synapse's figure).
	maxRecursionDepth = 3
	maxThreadsLimit   = 100
)

// visibleEvent loads one event of the room that userID may see; nil when
// it does not exist or is hidden from them, so that existence never leaks.
func (rs *Roomserver) visibleEvent(ctx context.Context, room roomInfo, userID, eventID string) (*storedEvent, error) {
	rows, err := rs.db.QueryContext(ctx, eventSelect+`WHERE e.event_id = $1 AND e.room_nid = $2 AND `+timelineEvent,
		eventID, room.nid)
	if err != nil {
		return nil, fmt.Errorf("load event %s: %w", eventID, err)
	}
	stored, err := scanEvents(rows)
	if err != nil || len(stored) == 0 {
		return nil, err
	}
	ok, err := rs.reader.canSee(ctx, room, userID, &stored[0])
	if err != nil || !ok {
		return nil, err
	}
	return &stored[0], nil
}

// clientEvents converts the events userID may see, with their bundled
// aggregations.
func (rs *Roomserver) clientEvents(ctx context.Context, room roomInfo, userID string, stored []storedEvent) ([]ClientEvent, error) {
	out := make([]ClientEvent, 0, len(stored))
	for i := range stored {
		ok, err := rs.reader.canSee(ctx, room, userID, &stored[i])
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		ce, err := stored[i].clientEvent(room)
		if err != nil {
			return nil, err
		}
		out = append(out, ce)
	}
	ptrs := make([]*ClientEvent, len(out))
	for i := range out {
		ptrs[i] = &out[i]
	}
	return out, rs.reader.bundle(ctx, room, userID, ptrs)
}

// relationsSQL walks the relations of $1 down to depth $3, keeping those
// of rel_type $4 and type $5 ("" matches all) in the range ($6, $7].
const relationsSQL = `WITH RECURSIVE rel (event_nid, event_id, stream_pos, rel_type, event_type, depth) AS (
	SELECT event_nid, event_id, stream_pos, rel_type, event_type, 1 FROM rs_relations
	WHERE relates_to_id = $1 AND room_nid = $2
	UNION ALL
	SELECT r.event_nid, r.event_id, r.stream_pos, r.rel_type, r.event_type, rel.depth + 1
	FROM rs_relations r JOIN rel ON r.relates_to_id = rel.event_id
	WHERE r.room_nid = $2 AND rel.depth < $3
)
SELECT event_nid, stream_pos, depth FROM rel
WHERE ($4 = '' OR rel_type = $4) AND ($5 = '' OR event_type = $5) AND stream_pos > $6 AND stream_pos <= $7
ORDER BY stream_pos `

func (rs *Roomserver) queryRelations(ctx context.Context, req *QueryRelationsRequest) (*QueryRelationsResponse, error) {
	room, err := rs.knownRoom(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	parent, err := rs.visibleEvent(ctx, room, req.UserID, req.EventID)
	if err != nil {
		return nil, err
	}
	if parent == nil {
		return nil, mxerr.NotFound("event %s not found", req.EventID)
	}
	limit := min(max(req.Limit, 1), maxRelationsLimit)
	depth := 1
	if req.Recurse {
		depth = maxRecursionDepth
	}
	lo, hi := int64(0), int64(math.MaxInt64)
	if req.Forwards {
		lo = req.From
		if req.To > 0 {
			hi = req.To
		}
	} else {
		if req.From > 0 {
			hi = req.From
		}
		lo = req.To
	}
	order := "DESC"
	if req.Forwards {
		order = "ASC"
	}
	rows, err := rs.db.QueryContext(ctx, relationsSQL+order+` LIMIT $8`,
		req.EventID, room.nid, depth, req.RelType, req.EventType, lo, hi, limit+1)
	if err != nil {
		return nil, fmt.Errorf("relations of %s: %w", req.EventID, err)
	}
	type hit struct {
		nid, pos int64
		depth    int
	}
	var hits []hit
	for rows.Next() {
		var h hit
		if err := rows.Scan(&h.nid, &h.pos, &h.depth); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan relation: %w", err)
		}
		hits = append(hits, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("relations of %s: %w", req.EventID, err)
	}
	resp := &QueryRelationsResponse{}
	if len(hits) > limit {
		hits = hits[:limit]
		last := hits[limit-1].pos
		resp.NextPos = last
		if !req.Forwards {
			resp.NextPos = last - 1
		}
	}
	nids := make([]int64, len(hits))
	resp.RecursionDepth = 1
	for i, h := range hits {
		nids[i] = h.nid
		resp.RecursionDepth = max(resp.RecursionDepth, h.depth)
	}
	if !req.Recurse {
		resp.RecursionDepth = 0
	}
	stored, err := rs.reader.eventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	sort.Slice(stored, func(i, j int) bool {
		if req.Forwards {
			return stored[i].pos < stored[j].pos
		}
		return stored[i].pos > stored[j].pos
	})
	if resp.Chunk, err = rs.clientEvents(ctx, room, req.UserID, stored); err != nil {
		return nil, err
	}
	return resp, nil
}

// queryThreads lists a room's thread roots, the most recently active
// first. NextPos is the latest reply position of the last thread: the
// next page holds threads whose latest reply is older.
func (rs *Roomserver) queryThreads(ctx context.Context, req *QueryThreadsRequest) (*QueryThreadsResponse, error) {
	room, err := rs.roomFor(ctx, req.RoomID, req.UserID)
	if err != nil {
		return nil, err
	}
	if _, err := rs.reader.readableUpTo(ctx, room, req.UserID); err != nil {
		return nil, err
	}
	limit := min(max(req.Limit, 1), maxThreadsLimit)
	before := req.From
	if before <= 0 {
		before = math.MaxInt64
	}
	participant := ""
	if req.Participated {
		participant = req.UserID
	}
	rows, err := rs.db.QueryContext(ctx, `SELECT relates_to_id, MAX(stream_pos) FROM rs_relations
		WHERE room_nid = $1 AND rel_type = 'm.thread'
		AND ($3 = '' OR relates_to_id IN (
			SELECT relates_to_id FROM rs_relations WHERE room_nid = $1 AND rel_type = 'm.thread' AND sender = $3
			UNION SELECT event_id FROM rs_events WHERE room_nid = $1 AND sender = $3))
		GROUP BY relates_to_id HAVING MAX(stream_pos) < $2
		ORDER BY MAX(stream_pos) DESC LIMIT $4`, room.nid, before, participant, limit+1)
	if err != nil {
		return nil, fmt.Errorf("threads of %s: %w", room.id, err)
	}
	type thread struct {
		root   string
		latest int64
	}
	var threads []thread
	for rows.Next() {
		var t thread
		if err := rows.Scan(&t.root, &t.latest); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan thread: %w", err)
		}
		threads = append(threads, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("threads of %s: %w", room.id, err)
	}
	resp := &QueryThreadsResponse{Chunk: []ClientEvent{}}
	if len(threads) > limit {
		threads = threads[:limit]
		resp.NextPos = threads[limit-1].latest
	}
	var roots []storedEvent
	for _, t := range threads {
		root, err := rs.visibleEvent(ctx, room, req.UserID, t.root)
		if err != nil {
			return nil, err
		}
		if root != nil {
			roots = append(roots, *root)
		}
	}
	if resp.Chunk, err = rs.clientEvents(ctx, room, req.UserID, roots); err != nil {
		return nil, err
	}
	return resp, nil
}
