package roomserver

import "github.com/chappe-matrix/chappe/internal/sqlutil"

// migrations are the roomserver's schema changes. Released migrations are
// never edited: a change is a new entry.
//
// The tables, in brief:
//   - rs_rooms: one row per room, with its version and its head: current
//     state snapshot, forward extremities (JSON array) and max depth.
//   - rs_events: every event once, with its full PDU JSON, its stream
//     position, and the snapshots of the room state before and after it.
//   - rs_state_snapshots: room states as deltas: a row is its parent's state
//     plus a few (type, state_key) -> event_nid entries, or a full state
//     when parent_nid is 0 (every fullSnapshotEvery deltas).
//   - rs_membership: each user's current membership per room.
//   - rs_aliases: local room aliases.
//   - rs_txns: (sender, device, txn_id) -> event_id, for idempotent sends.
//   - rs_redactions_pending (version 2): redactions whose target is not
//     stored yet, with what their authorisation needs from the state
//     before them (any_sender: the sender has the redact level).
var migrations = []sqlutil.Migration{{
	Version: 1,
	SQL: `
CREATE TABLE rs_rooms (
	room_nid BIGSERIAL PRIMARY KEY,
	room_id TEXT NOT NULL UNIQUE,
	version TEXT NOT NULL,
	snapshot_nid BIGINT NOT NULL DEFAULT 0,
	chain_len INTEGER NOT NULL DEFAULT 0,
	extremities TEXT NOT NULL DEFAULT '[]',
	depth BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE rs_events (
	event_nid BIGSERIAL PRIMARY KEY,
	event_id TEXT NOT NULL UNIQUE,
	room_nid BIGINT NOT NULL,
	type TEXT NOT NULL,
	state_key TEXT,
	sender TEXT NOT NULL,
	membership TEXT,
	stream_pos BIGINT NOT NULL UNIQUE,
	depth BIGINT NOT NULL,
	origin_server_ts BIGINT NOT NULL,
	json BYTEA NOT NULL,
	rejected BOOLEAN NOT NULL DEFAULT FALSE,
	sender_device_id TEXT NOT NULL DEFAULT '',
	txn_id TEXT NOT NULL DEFAULT '',
	redacted BOOLEAN NOT NULL DEFAULT FALSE,
	redacted_by_nid BIGINT NOT NULL DEFAULT 0,
	replaces_nid BIGINT NOT NULL DEFAULT 0,
	snapshot_before_nid BIGINT NOT NULL DEFAULT 0,
	snapshot_nid BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX rs_events_room_pos ON rs_events (room_nid, stream_pos);

CREATE INDEX rs_events_member_pos ON rs_events (state_key, stream_pos) WHERE membership IS NOT NULL;

CREATE TABLE rs_state_snapshots (
	snapshot_nid BIGSERIAL PRIMARY KEY,
	room_nid BIGINT NOT NULL,
	parent_nid BIGINT NOT NULL,
	chain_len INTEGER NOT NULL,
	entries TEXT NOT NULL
);

CREATE TABLE rs_membership (
	room_nid BIGINT NOT NULL,
	user_id TEXT NOT NULL,
	membership TEXT NOT NULL,
	event_nid BIGINT NOT NULL,
	stream_pos BIGINT NOT NULL,
	PRIMARY KEY (room_nid, user_id)
);

CREATE INDEX rs_membership_user ON rs_membership (user_id);

CREATE TABLE rs_aliases (
	alias TEXT PRIMARY KEY,
	room_id TEXT NOT NULL,
	creator TEXT NOT NULL
);

CREATE INDEX rs_aliases_room ON rs_aliases (room_id);

CREATE TABLE rs_txns (
	sender TEXT NOT NULL,
	device_id TEXT NOT NULL,
	txn_id TEXT NOT NULL,
	event_id TEXT NOT NULL,
	PRIMARY KEY (sender, device_id, txn_id)
)`,
}, {
	// Redactions accepted before the event they redact was stored
	// (redaction_pending.go): applied, or dropped, when it is.
	Version: 2,
	SQL: `
CREATE TABLE rs_redactions_pending (
	redaction_nid BIGINT PRIMARY KEY,
	room_nid BIGINT NOT NULL,
	target_id TEXT NOT NULL,
	any_sender BOOLEAN NOT NULL
);

CREATE INDEX rs_redactions_pending_target ON rs_redactions_pending (room_nid, target_id)`,
}}
