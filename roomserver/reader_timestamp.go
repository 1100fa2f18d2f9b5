package roomserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// TimestampReader finds events by their timestamps for the federation's
// timestamp_to_event, in its two roles: answering another server, and
// deciding whether the local history reaches a timestamp or another
// server must be asked.
type TimestampReader interface {
	// ClosestEventForServer is the room's timeline event closest to ts in
	// a direction (at or after ts; at or before it when backwards) that
	// server may see (VisibleToServer); nil when there is none among the
	// first maxTimestampScan events in that direction.
	ClosestEventForServer(ctx context.Context, roomID, server string, ts int64, backwards bool) (*TimestampedEvent, error)
	// TimelineStart tells where the room's stored timeline begins.
	TimelineStart(ctx context.Context, roomID string) (TimelineStart, error)
}

// TimestampedEvent is an answer of timestamp_to_event.
type TimestampedEvent struct {
	EventID        string `json:"event_id"`
	OriginServerTS int64  `json:"origin_server_ts"`
}

// TimelineStart is where a room's stored timeline begins.
type TimelineStart struct {
	// Complete is true when the earliest stored timeline event is the
	// room's create event: no server has anything older.
	Complete bool
	// Empty is true when the room has no timeline event stored (nor
	// EarliestTS a meaning).
	Empty bool
	// EarliestTS is the smallest origin_server_ts of the timeline.
	EarliestTS int64
}

const (
	// timestampPage is how many events are read, then checked for
	// visibility, at once.
	timestampPage = 100
	// maxTimestampScan bounds the events looked at for one answer: a
	// server that may see none of them gets 404, not a scan of the room.
	maxTimestampScan = 1000
)

// The events of a room ($1) after a (origin_server_ts, stream_pos) cursor
// ($2, $3) in each direction, closest first: timestamps tie in busy
// rooms, and positions break the ties so that pages neither repeat nor
// skip an event. The range on the timestamp alone lets the databases walk
// rs_events_room_ts.
const (
	timestampForwardSQL = `SELECT e.event_id, e.origin_server_ts, e.stream_pos FROM rs_events e
		WHERE e.room_nid = $1 AND ` + timelineEvent + `
			AND e.origin_server_ts >= $2 AND (e.origin_server_ts > $2 OR e.stream_pos > $3)
		ORDER BY e.origin_server_ts ASC, e.stream_pos ASC LIMIT $4`
	timestampBackwardSQL = `SELECT e.event_id, e.origin_server_ts, e.stream_pos FROM rs_events e
		WHERE e.room_nid = $1 AND ` + timelineEvent + `
			AND e.origin_server_ts <= $2 AND (e.origin_server_ts < $2 OR e.stream_pos < $3)
		ORDER BY e.origin_server_ts DESC, e.stream_pos DESC LIMIT $4`
)

var _ TimestampReader = (*federationReader)(nil)

func (f *federationReader) ClosestEventForServer(ctx context.Context, roomID, server string, ts int64, backwards bool) (*TimestampedEvent, error) {
	room, ok, err := f.r.room(ctx, roomID)
	if err != nil || !ok {
		return nil, err
	}
	query, pos := timestampForwardSQL, int64(0) // timeline positions are > 0
	if backwards {
		query, pos = timestampBackwardSQL, math.MaxInt64
	}
	for scanned := 0; scanned < maxTimestampScan; scanned += timestampPage {
		page, err := f.timestampPage(ctx, room, query, ts, pos)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return nil, nil
		}
		ids := make([]string, len(page))
		for i, ev := range page {
			ids[i] = ev.EventID
		}
		visible, err := f.VisibleToServer(ctx, roomID, server, ids)
		if err != nil {
			return nil, err
		}
		for _, ev := range page {
			if visible[ev.EventID] {
				return &ev.TimestampedEvent, nil
			}
		}
		last := page[len(page)-1]
		ts, pos = last.OriginServerTS, last.pos
		if len(page) < timestampPage {
			return nil, nil
		}
	}
	return nil, nil
}

// positionedEvent is a row of the timestamp queries.
type positionedEvent struct {
	TimestampedEvent
	pos int64
}

func (f *federationReader) timestampPage(ctx context.Context, room roomInfo, query string, ts, pos int64) ([]positionedEvent, error) {
	rows, err := f.r.db.QueryContext(ctx, query, room.nid, ts, pos, timestampPage)
	if err != nil {
		return nil, fmt.Errorf("events of %s near %d: %w", room.id, ts, err)
	}
	defer rows.Close()
	var out []positionedEvent
	for rows.Next() {
		var ev positionedEvent
		if err := rows.Scan(&ev.EventID, &ev.OriginServerTS, &ev.pos); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events of %s near %d: %w", room.id, ts, err)
	}
	return out, nil
}

func (f *federationReader) TimelineStart(ctx context.Context, roomID string) (TimelineStart, error) {
	room, ok, err := f.r.room(ctx, roomID)
	if err != nil || !ok {
		return TimelineStart{Empty: true}, err
	}
	var first string
	err = f.r.db.QueryRowContext(ctx, `SELECT e.type FROM rs_events e
		WHERE e.room_nid = $1 AND `+timelineEvent+` ORDER BY e.stream_pos ASC LIMIT 1`, room.nid).Scan(&first)
	if errors.Is(err, sql.ErrNoRows) {
		return TimelineStart{Empty: true}, nil
	}
	if err != nil {
		return TimelineStart{}, fmt.Errorf("first event of %s: %w", roomID, err)
	}
	out := TimelineStart{Complete: first == spec.MRoomCreate}
	// Timestamps are the senders' clocks: the earliest is not always the
	// first event's. (ORDER BY rather than MIN: both databases then walk
	// rs_events_room_ts and stop at the first timeline event.)
	err = f.r.db.QueryRowContext(ctx, `SELECT e.origin_server_ts FROM rs_events e
		WHERE e.room_nid = $1 AND `+timelineEvent+` ORDER BY e.origin_server_ts ASC LIMIT 1`, room.nid).Scan(&out.EarliestTS)
	if err != nil {
		return TimelineStart{}, fmt.Errorf("earliest timestamp of %s: %w", roomID, err)
	}
	return out, nil
}
