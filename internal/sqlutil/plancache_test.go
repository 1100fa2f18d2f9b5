package sqlutil

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// postgresSchemaDSN makes a fresh schema in CHAPPE_TEST_POSTGRES, dropped
// when the test ends, and returns a URL selecting it with extra parameters.
func postgresSchemaDSN(t *testing.T, params url.Values) string {
	t.Helper()
	base := os.Getenv("CHAPPE_TEST_POSTGRES")
	if base == "" {
		t.Skip("CHAPPE_TEST_POSTGRES is not set")
	}
	ctx := context.Background()
	admin, err := Open(ctx, base, Options{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	schema := "pc_" + hex.EncodeToString(r[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		_ = admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// A lookup first run while its table is empty must still use the index
// once the table is large, in a transaction that asked for it
// (PlanEachQuery). The query is the roomserver's lookupEvents
// (event_id IN ($1..$128)); one connection, so every execution reuses the
// statement pgx prepared. Without PlanEachQuery (PostgreSQL's default,
// plan_cache_mode=auto) the plan and the times are logged, not asserted.
func TestPostgresPlansForTablesThatGrew(t *testing.T) {
	const small, rows, width = 20, 100_000, 128
	for _, planEach := range []bool{false, true} {
		lookups := 100
		if !planEach {
			lookups = 5 // each reads the whole table
		}
		t.Run(fmt.Sprint("plan_each_query=", planEach), func(t *testing.T) {
			db, err := Open(context.Background(), postgresSchemaDSN(t, url.Values{}), Options{MaxOpenConns: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			if _, err := db.ExecContext(ctx, `CREATE TABLE ev (
				event_nid BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL UNIQUE,
				room_nid BIGINT NOT NULL, type TEXT NOT NULL, json BYTEA NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			marks := make([]string, width)
			for i := range marks {
				marks[i] = fmt.Sprint("$", i+1)
			}
			lookup := `SELECT event_nid, json FROM ev WHERE event_id IN (` + strings.Join(marks, ", ") + `)`
			ids := func(from int) []any {
				out := make([]any, width)
				for i := range out {
					out[i] = fmt.Sprint("$e", (from+i*797)%rows)
				}
				return out
			}
			run := func(q Querier, args []any) int {
				rs, err := q.QueryContext(ctx, lookup, args...)
				if err != nil {
					t.Fatal(err)
				}
				defer rs.Close()
				n := 0
				for rs.Next() {
					n++
				}
				if err := rs.Err(); err != nil {
					t.Fatal(err)
				}
				return n
			}
			fill := func(from, to int) {
				if _, err := db.ExecContext(ctx, `INSERT INTO ev (event_id, room_nid, type, json)
					SELECT '$e' || i, i % 10, 'm.room.member', convert_to(repeat('x', 300), 'UTF8')
					FROM generate_series($1::BIGINT, $2::BIGINT - 1) AS i`, from, to); err != nil {
					t.Fatal(err)
				}
			}
			// A fresh server: a few events, which autovacuum has analysed.
			fill(0, small)
			if _, err := db.ExecContext(ctx, `ANALYZE ev`); err != nil {
				t.Fatal(err)
			}
			for i := range 10 { // the statement's first executions
				run(db, ids(i))
			}
			fill(small, rows) // a large room joined

			// EXPLAIN of the very statement pgx prepared, on the same
			// connection, and the lookups, in one transaction.
			sum := sha256.Sum256([]byte(lookup))
			lits := make([]string, width)
			for i, a := range ids(1) {
				lits[i] = "'" + a.(string) + "'"
			}
			var plan []string
			var elapsed time.Duration
			found := 0
			err = db.WithTx(ctx, func(tx *Tx) error {
				if planEach {
					if err := tx.PlanEachQuery(ctx); err != nil {
						return err
					}
				}
				var err error
				plan, err = Strings(ctx, tx, `EXPLAIN (ANALYZE) EXECUTE stmtcache_`+hex.EncodeToString(sum[:24])+`(`+strings.Join(lits, ", ")+`)`)
				if err != nil {
					return err
				}
				start := time.Now()
				for i := range lookups {
					found += run(tx, ids(i*13))
				}
				elapsed = time.Since(start)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}

			short := make([]string, len(plan))
			for i, line := range plan {
				short[i] = line[:min(len(line), 100)]
			}
			t.Logf("plan each query %v: %d lookups of %d ids: %v (%v each, %d rows); plan:\n%s",
				planEach, lookups, width, elapsed, elapsed/time.Duration(lookups), found, strings.Join(short, "\n"))
			if found != lookups*width {
				t.Fatalf("found %d rows, want %d", found, lookups*width)
			}
			if planEach && strings.Contains(strings.Join(plan, "\n"), "Seq Scan") {
				t.Fatalf("the lookup scans the whole table:\n%s", strings.Join(plan, "\n"))
			}
		})
	}
}
