package sqlutil

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestRewritePlaceholdersForSQLite(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"in order: bare", `INSERT INTO t (a, b, c) VALUES ($1, $2, $3)`, `INSERT INTO t (a, b, c) VALUES (?, ?, ?)`},
		{"many rows in order: bare", `VALUES ($1,$2),($3,$4),($5,$6),($7,$8),($9,$10),($11,$12)`, `VALUES (?,?),(?,?),(?,?),(?,?),(?,?),(?,?)`},
		{"repeated: numbered", `SELECT $1, $2, $1`, `SELECT ?1, ?2, ?1`},
		{"reordered: numbered", `SELECT $2, $1`, `SELECT ?2, ?1`},
		{"gap: numbered", `SELECT $1, $3`, `SELECT ?1, ?3`},
		{"not from 1: numbered", `SELECT $2`, `SELECT ?2`},
		{"upsert repeats: numbered", `INSERT INTO t (k, n) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET n = t.n + $2`,
			`INSERT INTO t (k, n) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET n = t.n + ?2`},
		{"none", `SELECT 1`, `SELECT 1`},
		{"in a string", `SELECT '$1', $1, 'it''s $2', $2`, `SELECT '$1', ?, 'it''s $2', ?`},
		{"string ends in a doubled quote", `SELECT 'a''', $1`, `SELECT 'a''', ?`},
		{"backslash is plain in a string", `WHERE x LIKE $1 ESCAPE '\' OR y LIKE $2 ESCAPE '\'`, `WHERE x LIKE ? ESCAPE '\' OR y LIKE ? ESCAPE '\'`},
		{"in a quoted name", `SELECT "col$1" FROM t WHERE a = $1`, `SELECT "col$1" FROM t WHERE a = ?`},
		{"in comments", "SELECT $1 -- not $2\n, $2 /* nor $1 */", "SELECT ? -- not $2\n, ? /* nor $1 */"},
		{"in a name", `SELECT a$1 FROM t WHERE b = $1`, `SELECT a$1 FROM t WHERE b = ?`},
		{"string in order does not count", `SELECT $1, '$1', $2`, `SELECT ?, '$1', ?`},
		{"two statements: numbered", `UPDATE t SET a = $1; UPDATE u SET b = $2`, `UPDATE t SET a = ?1; UPDATE u SET b = ?2`},
		{"trailing semicolon: bare", `SELECT $1, $2;  `, `SELECT ?, ?;  `},
		{"semicolon in a string: bare", `SELECT ';', $1`, `SELECT ';', ?`},
		{"ddl words, not in strings", `CREATE TABLE x (id BIGSERIAL PRIMARY KEY, b BYTEA DEFAULT 'BYTEA')`,
			`CREATE TABLE x (id INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB DEFAULT 'BYTEA')`},
		{"unterminated string", `SELECT $1, 'oops $2`, `SELECT ?, 'oops $2`},
		{"ten and up", `SELECT $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$10`, `SELECT ?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?10`},
	}
	for _, c := range cases {
		if got := SQLite.Rewrite(c.in); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
		if got := Postgres.Rewrite(c.in); got != c.in {
			t.Errorf("%s: postgres text changed to %q", c.name, got)
		}
	}
}

// Both placeholder forms bind the arguments they name when SQLite runs them.
func TestRewrittenPlaceholdersBindOnSQLite(t *testing.T) {
	db, err := Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "bind.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, c := range []struct {
		query string
		args  []any
		want  string
	}{
		{`SELECT $1 || $2 || $3 || '$1'`, []any{"a", "b", "c"}, "abc$1"},
		{`SELECT $2 || $1 || $2`, []any{"a", "b"}, "bab"},
		{`SELECT $1 || ';' || $2`, []any{"a", "b"}, "a;b"},
	} {
		var got string
		if err := db.QueryRowContext(ctx, c.query, c.args...).Scan(&got); err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		if got != c.want {
			t.Errorf("%s = %q, want %q", c.query, got, c.want)
		}
	}
	// A wide insert, and the rows read back in order.
	if _, err := db.ExecContext(ctx, `CREATE TABLE wide (i BIGINT, s TEXT)`); err != nil {
		t.Fatal(err)
	}
	query, args := wideInsert("wide", []string{"i", "s"}, 300, func(r, c int) any {
		if c == 0 {
			return int64(r)
		}
		return fmt.Sprint("row", r)
	})
	if _, err := db.ExecContext(ctx, query, args...); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, `SELECT i, s FROM wide ORDER BY i`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for ; rows.Next(); n++ {
		var i int64
		var s string
		if err := rows.Scan(&i, &s); err != nil {
			t.Fatal(err)
		}
		if i != int64(n) || s != fmt.Sprint("row", n) {
			t.Fatalf("row %d = (%d, %q)", n, i, s)
		}
	}
	if n != 300 {
		t.Fatalf("%d rows", n)
	}
}

// wideInsert builds a multi-row INSERT into table's columns, placeholders
// $1… in order, and its arguments.
func wideInsert(table string, columns []string, rows int, value func(r, c int) any) (string, []any) {
	var b strings.Builder
	cols := len(columns)
	fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", table, strings.Join(columns, ", "))
	args := make([]any, 0, rows*cols)
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteString(", ")
			}
			args = append(args, value(r, c))
			fmt.Fprintf(&b, "$%d", len(args))
		}
		b.WriteByte(')')
	}
	return b.String(), args
}

// BenchmarkWideInsertSQLite inserts 500 rows × 8 columns in one statement,
// prepared once, with the placeholders rewritten as ?N (numbered, the
// rewrite before bare ?s) and as Rewrite now writes them (bare).
func BenchmarkWideInsertSQLite(b *testing.B) {
	const rows, cols = 500, 8
	columns := make([]string, cols)
	for c := range columns {
		columns[c] = fmt.Sprint("c", c)
	}
	query, args := wideInsert("w", columns, rows, func(r, c int) any {
		if c%2 == 0 {
			return int64(r*cols + c)
		}
		return fmt.Sprintf("value-%d-%d", r, c)
	})
	numbered := regexp.MustCompile(`\$(\d+)`).ReplaceAllString(query, "?$1") // the rewrite before this one
	for _, form := range []struct{ name, text string }{
		{"numbered", numbered},
		{"bare", SQLite.Rewrite(query)},
	} {
		b.Run(form.name, func(b *testing.B) {
			db, err := Open(context.Background(), "sqlite://"+filepath.Join(b.TempDir(), "bench.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			if _, err := db.ExecContext(ctx, "CREATE TABLE w ("+strings.Join(columns, ", ")+")"); err != nil {
				b.Fatal(err)
			}
			st, err := db.sql.PrepareContext(ctx, form.text)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			for b.Loop() {
				if _, err := st.ExecContext(ctx, args...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
