package syncapi

import (
	"context"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// syncapi owns the per-user data that flows through /sync and nothing
// else: account data (tags and m.fully_read included), read receipts,
// presence and stored filters. Typing notifications are not stored: they
// live in each process's memory (typing.go).
//
// Account data, receipts and presence share one position counter,
// sy_stream: every write takes the next position in the transaction that
// writes the row. The counter is one row, so its row lock serialises these
// writers, and positions become visible in commit order: a reader that
// sees position N sees every row up to N. Tokens carry that position.
var migrations = []sqlutil.Migration{
	{Version: 1, SQL: `
CREATE TABLE sy_stream (
	id INT PRIMARY KEY,
	pos BIGINT NOT NULL
);
INSERT INTO sy_stream (id, pos) VALUES (1, 0);

CREATE TABLE sy_account_data (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL, -- '' for global account data
	type TEXT NOT NULL,
	content TEXT NOT NULL,
	pos BIGINT NOT NULL,
	PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX sy_account_data_pos ON sy_account_data (user_id, pos);

CREATE TABLE sy_receipts (
	room_id TEXT NOT NULL,
	receipt_type TEXT NOT NULL, -- m.read or m.read.private
	user_id TEXT NOT NULL,
	thread_id TEXT NOT NULL, -- '' for an unthreaded receipt
	event_id TEXT NOT NULL,
	ts BIGINT NOT NULL,
	pos BIGINT NOT NULL,
	PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX sy_receipts_pos ON sy_receipts (pos);

CREATE TABLE sy_presence (
	user_id TEXT PRIMARY KEY,
	presence TEXT NOT NULL,
	status_msg TEXT,
	last_active_ms BIGINT NOT NULL,
	pos BIGINT NOT NULL
);
CREATE INDEX sy_presence_pos ON sy_presence (pos);

CREATE TABLE sy_filters (
	filter_id BIGSERIAL PRIMARY KEY,
	user_id TEXT NOT NULL,
	filter TEXT NOT NULL
)`},
}

// store is syncapi's database.
type store struct {
	db *sqlutil.DB
}

func openStore(ctx context.Context, db *sqlutil.DB) (*store, error) {
	if db == nil {
		return nil, fmt.Errorf("syncapi needs a database")
	}
	if err := db.Migrate(ctx, "syncapi", migrations); err != nil {
		return nil, err
	}
	return &store{db: db}, nil
}

// nextPos takes the next sy_stream position inside tx. The row stays
// locked until tx ends, so the position and the rows written with it
// become visible together.
func nextPos(ctx context.Context, tx *sqlutil.Tx) (int64, error) {
	var pos int64
	if err := tx.QueryRowContext(ctx, `UPDATE sy_stream SET pos = pos + 1 WHERE id = 1 RETURNING pos`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("next sync stream position: %w", err)
	}
	return pos, nil
}

// maxPos is the last committed sy_stream position.
func (s *store) maxPos(ctx context.Context) (int64, error) {
	var pos int64
	if err := s.db.QueryRowContext(ctx, `SELECT pos FROM sy_stream WHERE id = 1`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("sync stream position: %w", err)
	}
	return pos, nil
}
