package syncapi

import "github.com/chappe-matrix/chappe/internal/sqlutil"

// receiptMigrations extend sy_receipts (created by syncapi's own list)
// under their own component name, "syncapi_receipts", so that they never
// collide with that list's versions.
//
// Version 1: event_pos, the stream position of the receipt's event. A
// receipt for an event older than the one a user's receipt of that type
// (and thread) already names is ignored, as the spec asks: receipts only
// move forward. Rows stored before it have 0, so any receipt replaces
// them.
var receiptMigrations = []sqlutil.Migration{{Version: 1, SQL: `
ALTER TABLE sy_receipts ADD COLUMN event_pos BIGINT NOT NULL DEFAULT 0`}}
