package syncapi

import (
	"context"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// e2eeMigrations are the tables of to-device messages and device-list
// changes. They are numbered as their own component ("syncapi_e2ee") so
// that they never collide with the migrations of syncapi's main list.
// Both tables take their positions from sy_stream (nextPos), inside the
// transaction that writes the row, like account data: a token's stream
// position covers them.
var e2eeMigrations = []sqlutil.Migration{{Version: 1, SQL: `
CREATE TABLE sy_to_device (
	pos BIGINT PRIMARY KEY,
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	sender TEXT NOT NULL,
	type TEXT NOT NULL,
	content TEXT NOT NULL
);
CREATE INDEX sy_to_device_target ON sy_to_device (user_id, device_id, pos);

-- Transaction IDs already applied, per sending device (idempotent PUT).
CREATE TABLE sy_to_device_txns (
	sender TEXT NOT NULL,
	sender_device TEXT NOT NULL,
	txn_id TEXT NOT NULL,
	created_ms BIGINT NOT NULL,
	PRIMARY KEY (sender, sender_device, txn_id)
);

-- Users whose devices or cross-signing keys changed, from KEY_CHANGES.
CREATE TABLE sy_device_list_changes (
	pos BIGINT PRIMARY KEY,
	user_id TEXT NOT NULL
);
`}}

func migrateE2EE(ctx context.Context, db *sqlutil.DB) error {
	if err := db.Migrate(ctx, "syncapi_e2ee", e2eeMigrations); err != nil {
		return fmt.Errorf("syncapi e2ee storage: %w", err)
	}
	return nil
}
