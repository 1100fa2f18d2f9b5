package roomserver

import "github.com/chappe-matrix/chappe/internal/sqlutil"

// federationMigrations ("roomserver_federation" in schema_migrations) turn
// the line of locally built events into a DAG that events of other servers
// join.
//
//   - rs_events.outlier: stored for its own sake (an auth or state event, the
//     state of a joined room, a local user's membership in a room this
//     server is not in); soft_failed: allowed at its own state but not by
//     the room's current state; backfilled: older history stored by
//     backfill. Outliers, rejected and soft-failed events have unique
//     negative stream positions (but out-of-room memberships, which /sync
//     shows), so no position-range query of the timeline meets them.
//   - snapshot_before_nid / snapshot_nid keep the state before and after
//     the event in DAG terms; room_snapshot_before_nid / room_snapshot_nid
//     are the room's current state just before and after the event was
//     applied (they differ once branches are resolved), which is what the
//     EventReader answers for a stream position.
//   - rs_event_edges: the prev_events of every event that is not an
//     outlier, so the DAG can be walked by queries.
//   - rs_rooms.backfill_next / backfill_floor: the positions reserved below
//     a federated join for history fetched by backfill (input_backfill.go).
//   - rs_backfill_reserves (version 2): the same for each hole in the
//     middle of a room's history, below the event after the hole (top_pos).
//   - rs_membership.joined_since (version 3): for a joined user, the
//     position of the event that made them joined (a later join that only
//     changes their profile keeps it), so that the federation sender sends
//     an event only to the servers that were in the room before it (0 for
//     memberships stored before: in the room since always).
//
// Local rooms were always a line: an event's prev_event is the room's
// previous event, which is how the edges of existing events are filled.
var federationMigrations = []sqlutil.Migration{{
	Version: 1,
	SQL: `
ALTER TABLE rs_events ADD COLUMN outlier BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE rs_events ADD COLUMN soft_failed BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE rs_events ADD COLUMN backfilled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE rs_events ADD COLUMN room_snapshot_before_nid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rs_events ADD COLUMN room_snapshot_nid BIGINT NOT NULL DEFAULT 0;
UPDATE rs_events SET room_snapshot_before_nid = snapshot_before_nid, room_snapshot_nid = snapshot_nid;
ALTER TABLE rs_rooms ADD COLUMN backfill_next BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rs_rooms ADD COLUMN backfill_floor BIGINT NOT NULL DEFAULT 0;
CREATE INDEX rs_events_room_depth ON rs_events (room_nid, depth);
CREATE TABLE rs_event_edges (
	event_nid BIGINT NOT NULL,
	prev_event_id TEXT NOT NULL,
	PRIMARY KEY (event_nid, prev_event_id)
);
CREATE INDEX rs_event_edges_prev ON rs_event_edges (prev_event_id);
INSERT INTO rs_event_edges (event_nid, prev_event_id)
	SELECT e.event_nid, (SELECT p.event_id FROM rs_events p WHERE p.room_nid = e.room_nid AND p.stream_pos < e.stream_pos
		ORDER BY p.stream_pos DESC LIMIT 1)
	FROM rs_events e
	WHERE EXISTS (SELECT 1 FROM rs_events q WHERE q.room_nid = e.room_nid AND q.stream_pos < e.stream_pos)`,
}, {
	Version: 2,
	SQL: `
CREATE TABLE rs_backfill_reserves (
	room_nid BIGINT NOT NULL,
	top_pos BIGINT NOT NULL,
	next_pos BIGINT NOT NULL,
	floor_pos BIGINT NOT NULL,
	PRIMARY KEY (room_nid, top_pos)
)`,
}, {
	Version: 3,
	SQL:     `ALTER TABLE rs_membership ADD COLUMN joined_since BIGINT NOT NULL DEFAULT 0`,
}}
