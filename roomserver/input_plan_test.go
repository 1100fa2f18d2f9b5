package roomserver

import (
	"strings"
	"testing"
)

// The queries every inbound request runs with a list of the request's
// event IDs must look the IDs up by index, whatever the room's size.
// SQLite (never analysed, so planning on its defaults) walked the whole
// room for a long IN list joined with "room_nid = $1": one /send cost
// more the bigger the room. PostgreSQL plans with its statistics and is
// not asked here.
func TestInputQueryPlans(t *testing.T) {
	env := newTestEnv(t, "sqlite")
	n := idChunkSizes[len(idChunkSizes)-1]
	ids := make([]any, n)
	for i := range ids {
		ids[i] = "$x"
	}
	for _, c := range []struct {
		name, sql, index string
		args             []any
	}{
		{"children of events", childEdgesSQL(placeholders(1, n)), "rs_event_edges_prev", ids},
		{"pending redactions", pendingRedactionSelect + ` AND p.target_id IN (` + placeholders(2, n) + `)`,
			"rs_redactions_pending_target", append([]any{int64(1)}, ids...)},
	} {
		rows, err := env.db.QueryContext(env.ctx, `EXPLAIN QUERY PLAN `+c.sql, c.args...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var steps []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			steps = append(steps, detail)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		plan := strings.Join(steps, "; ")
		if len(steps) == 0 || !strings.Contains(steps[0], c.index) {
			t.Errorf("%s does not begin with a search of %s: %s", c.name, c.index, plan)
		}
		if strings.Contains(plan, "SCAN") || strings.Contains(plan, "(room_nid=?)") {
			t.Errorf("%s walks a table or a room's events: %s", c.name, plan)
		}
	}
}
