package userapi

import (
	"context"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// e2eeMigrations are the E2EE tables added after the userapi's main list
// (keys_schema.go is its version 4). They are numbered as their own
// component ("userapi_e2ee") so that they never collide with the main
// list's next versions.
var e2eeMigrations = []sqlutil.Migration{{Version: 1, SQL: `
-- A user's dehydrated device (MSC3814): at most one, replaced by the next
-- upload. Its keys live in ua_device_keys, ua_one_time_keys and
-- ua_fallback_keys under device_id like any device's, but it is not a
-- session: no ua_devices row, no token, never listed in /devices.
-- device_data is the client's encrypted device, returned as uploaded.
CREATE TABLE ua_dehydrated_devices (
	user_id TEXT PRIMARY KEY,
	device_id TEXT NOT NULL,
	device_data TEXT NOT NULL,
	display_name TEXT NOT NULL DEFAULT '',
	created_ms BIGINT NOT NULL
);
`}}

func migrateE2EE(ctx context.Context, db *sqlutil.DB) error {
	if err := db.Migrate(ctx, "userapi_e2ee", e2eeMigrations); err != nil {
		return fmt.Errorf("userapi e2ee storage: %w", err)
	}
	return nil
}
