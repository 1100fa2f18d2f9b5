package roomserver

import "github.com/chappe-matrix/chappe/internal/sqlutil"

// searchMigrations (component "roomserver_search") hold the full-text
// search index of /search. One row per searchable key of an event
// (content.body, content.name, content.topic); value is lower-cased so
// that one LIKE works alike on SQLite and PostgreSQL.
//
// Scaling limit: a LIKE '%term%' cannot use an index, so a search scans
// the rows of the user's joined rooms (the join on rs_membership bounds
// it). Fine for the few hundred thousand messages of a ministry's
// server; past that, a PostgreSQL tsvector/GIN index is the next step.
//
// Events stored before this migration are not indexed.
var searchMigrations = []sqlutil.Migration{{
	Version: 1,
	SQL: `
CREATE TABLE rs_search (
	event_nid BIGINT NOT NULL,
	search_key TEXT NOT NULL,
	room_nid BIGINT NOT NULL,
	stream_pos BIGINT NOT NULL,
	sender TEXT NOT NULL,
	event_type TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (event_nid, search_key)
);
CREATE INDEX rs_search_room_pos ON rs_search (room_nid, stream_pos);
`,
}}
