// Package sqltest gives tests a fresh database: SQLite in a temporary
// directory, or a new schema in the PostgreSQL of CHAPPE_TEST_POSTGRES,
// dropped when the test ends.
package sqltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Backends lists the databases tests run on: SQLite always, PostgreSQL
// when CHAPPE_TEST_POSTGRES holds its URL.
func Backends() []string {
	out := []string{"sqlite"}
	if os.Getenv("CHAPPE_TEST_POSTGRES") != "" {
		out = append(out, "postgres")
	}
	return out
}

// Open opens a fresh database of the backend ("sqlite" or "postgres"),
// closed when the test ends.
func Open(t testing.TB, backend string) *sqlutil.DB {
	t.Helper()
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "chappe.db")
	if backend == "postgres" {
		dsn = PostgresSchema(t, os.Getenv("CHAPPE_TEST_POSTGRES"))
	}
	db, err := sqlutil.Open(context.Background(), dsn, sqlutil.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", backend, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// PostgresSchema creates schema t_<random> in the database at base and
// returns a URL that selects it; the schema is dropped when the test ends.
func PostgresSchema(t testing.TB, base string) string {
	t.Helper()
	ctx := context.Background()
	admin, err := sqlutil.Open(ctx, base, sqlutil.Options{MaxOpenConns: 1})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	schema := "t_" + hex.EncodeToString(r[:])
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		_ = admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("CHAPPE_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
