package sqlutil

import (
	"context"
	"fmt"
)

// pgx prepares each query once per connection and reuses it. PostgreSQL
// plans a prepared statement for its arguments five times, then may keep
// one generic plan for the connection's life. On a fresh server those
// five run on tables still nearly empty, where a sequential scan is
// cheapest; the generic plan keeps scanning once the table holds 100,000
// events (a 10,000-member room join spent 9.5 s of its 13–27 s in such
// scans of rs_events; TestPostgresPlansForTablesThatGrew shows 240 ms a
// lookup instead of 0.7 ms).
//
// Planning every query for its arguments (plan_cache_mode =
// force_custom_plan) avoids that, but doubled the time of a /sync on
// PostgreSQL (its queries are many and complex, and their generic plans
// good). So it is asked for where tables grow under the queries: the
// transactions that store a federated room's events in bulk.

// PlanEachQuery makes the rest of the transaction plan each statement
// for its arguments and the tables as they are now, never with a generic
// plan cached by the connection. Nothing on SQLite, which plans each
// statement when it is prepared and again when the schema's statistics
// change.
func (t *Tx) PlanEachQuery(ctx context.Context) error {
	if t.db.Dialect != Postgres {
		return nil
	}
	if _, err := t.tx.ExecContext(ctx, `SET LOCAL plan_cache_mode = force_custom_plan`); err != nil {
		return fmt.Errorf("plan each query: %w", err)
	}
	return nil
}
