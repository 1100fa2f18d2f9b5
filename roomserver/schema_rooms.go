package roomserver

import "github.com/chappe-matrix/chappe/internal/sqlutil"

// relationMigrations index event relationships (m.relates_to). They are a
// component of their own in schema_migrations ("roomserver_relations") so
// the roomserver's first list stays as released.
//
//   - rs_relations: one row per stored event that relates to another:
//     the parent's event ID (which may be unknown to us), the rel_type,
//     the child's type and sender and its stream position. Written in the
//     transaction that stores the event, deleted when it is redacted.
var relationMigrations = []sqlutil.Migration{{
	Version: 1,
	SQL: `
CREATE TABLE rs_relations (
	event_nid BIGINT PRIMARY KEY,
	event_id TEXT NOT NULL,
	room_nid BIGINT NOT NULL,
	relates_to_id TEXT NOT NULL,
	rel_type TEXT NOT NULL,
	event_type TEXT NOT NULL,
	sender TEXT NOT NULL,
	stream_pos BIGINT NOT NULL,
	origin_server_ts BIGINT NOT NULL
);

CREATE INDEX rs_relations_parent ON rs_relations (relates_to_id, rel_type, stream_pos);

CREATE INDEX rs_relations_threads ON rs_relations (room_nid, rel_type, stream_pos)`,
}}

// roomMigrations are the room directory, forgotten rooms and reports
// ("roomserver_rooms" in schema_migrations).
//
//   - rs_published_rooms: rooms published in the public room directory.
//   - rs_forgotten: rooms users forgot, with the position of the membership
//     event they forgot at; a later membership event means they came back.
//   - rs_reports: content reports, for the server's moderators.
//   - rs_events_room_ts: finds events by timestamp (timestamp_to_event).
//   - rs_events_history_visibility (version 2): finds a room's history
//     visibility events.
var roomMigrations = []sqlutil.Migration{{
	Version: 1,
	SQL: `
CREATE TABLE rs_published_rooms (
	room_id TEXT PRIMARY KEY,
	published_ms BIGINT NOT NULL
);

CREATE TABLE rs_forgotten (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	membership_pos BIGINT NOT NULL,
	PRIMARY KEY (user_id, room_id)
);

CREATE TABLE rs_reports (
	report_id BIGSERIAL PRIMARY KEY,
	room_id TEXT NOT NULL,
	event_id TEXT NOT NULL DEFAULT '',
	reporter TEXT NOT NULL,
	reason TEXT NOT NULL DEFAULT '',
	score INTEGER,
	received_ms BIGINT NOT NULL
);

CREATE INDEX rs_events_room_ts ON rs_events (room_nid, origin_server_ts)`,
}, {
	// A handful of rows per room: HistoryOpenThrough reads them without
	// reading the room's other events.
	Version: 2,
	SQL: `
CREATE INDEX rs_events_history_visibility ON rs_events (type, room_nid) WHERE type = 'm.room.history_visibility'`,
}}
