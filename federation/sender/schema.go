package sender

import "github.com/chappe-matrix/chappe/internal/sqlutil"

// migrationList is the name of the sender's migrations in schema_migrations.
const migrationList = "federation_sender"

// migrations of the fs_ sender tables; released ones are never edited.
var migrations = []sqlutil.Migration{{
	Version: 1,
	SQL: `
-- What the sender knows of each server it sends to: its back-off after
-- failures (retry_at_ms in Unix ms, 0: send at once) and its last success.
CREATE TABLE fs_destinations (
	server_name TEXT PRIMARY KEY,
	failures BIGINT NOT NULL DEFAULT 0,
	retry_at_ms BIGINT NOT NULL DEFAULT 0,
	last_success_ms BIGINT NOT NULL DEFAULT 0,
	last_txn_id TEXT NOT NULL DEFAULT ''
);

-- The PDUs waiting to be sent, each stored once whatever the number of
-- destinations (a room with twenty servers would store it twenty times).
CREATE TABLE fs_pdu_json (
	event_nid BIGSERIAL PRIMARY KEY,
	event_id TEXT NOT NULL UNIQUE,
	room_id TEXT NOT NULL,
	event_json TEXT NOT NULL
);
CREATE INDEX fs_pdu_json_room ON fs_pdu_json (room_id);

-- One row per PDU and destination, in the order they are to be sent (id).
-- txn_id is the transaction the row was put in ('' while waiting): a
-- failed transaction is sent again with the same ID and the same rows,
-- so the destination can recognise it.
CREATE TABLE fs_queue_pdus (
	id BIGSERIAL PRIMARY KEY,
	destination TEXT NOT NULL,
	event_nid BIGINT NOT NULL,
	room_id TEXT NOT NULL,
	txn_id TEXT NOT NULL DEFAULT '',
	UNIQUE (destination, event_nid)
);
CREATE INDEX fs_queue_pdus_dest ON fs_queue_pdus (destination, txn_id, id);
CREATE INDEX fs_queue_pdus_nid ON fs_queue_pdus (event_nid);

-- The EDUs waiting to be sent. An EDU with a coalesce_key replaces a
-- waiting one with the same key (a newer typing state, receipt or
-- presence of the same user), so a server that is down does not pile
-- them up.
CREATE TABLE fs_queue_edus (
	id BIGSERIAL PRIMARY KEY,
	destination TEXT NOT NULL,
	edu_type TEXT NOT NULL,
	coalesce_key TEXT NOT NULL DEFAULT '',
	content TEXT NOT NULL,
	txn_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX fs_queue_edus_dest ON fs_queue_edus (destination, txn_id, id);
CREATE INDEX fs_queue_edus_key ON fs_queue_edus (destination, coalesce_key);

-- The m.device_list_update sequence of each local user: the last
-- stream_id sent (devicelists.go).
CREATE TABLE fs_device_list_streams (
	user_id TEXT PRIMARY KEY,
	stream_id BIGINT NOT NULL
);

-- What was last announced of each device of a local user (a digest of its
-- display name and keys), to tell new, changed and deleted devices apart.
-- device_id '' holds the digest of the user's cross-signing keys.
CREATE TABLE fs_device_list_sent (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	digest TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id)
);

-- Where the sender's durable consumers started (inputs.go): the messages
-- already in a stream when the sender first ran are history, not news.
-- stream_created_ns tells a stream recreated since (NATS reset) apart.
CREATE TABLE fs_stream_starts (
	stream TEXT PRIMARY KEY,
	stream_created_ns BIGINT NOT NULL,
	skip_through BIGINT NOT NULL
)`,
}}
