package sqlutil

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestRewriteForSQLite(t *testing.T) {
	got := SQLite.Rewrite(`CREATE TABLE x (id BIGSERIAL PRIMARY KEY, b BYTEA); SELECT $1, $2, $1`)
	want := `CREATE TABLE x (id INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB); SELECT ?1, ?2, ?1`
	if got != want {
		t.Fatalf("got %q", got)
	}
	if Postgres.Rewrite("SELECT $1") != "SELECT $1" {
		t.Fatal("postgres text must not change")
	}
}

// openTestDB opens SQLite in a temp dir, or a fresh PostgreSQL schema when
// CHAPPE_TEST_POSTGRES is set.
func openTestDB(t *testing.T) *DB {
	t.Helper()
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "test.db")
	if base := os.Getenv("CHAPPE_TEST_POSTGRES"); base != "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		schema := "sq_" + hex.EncodeToString(b[:])
		admin, err := Open(context.Background(), base, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			admin.Close()
		})
		u, _ := url.Parse(base)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	db, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var testMigrations = []Migration{
	{Version: 1, SQL: `CREATE TABLE things (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, data BYTEA);`},
	{Version: 2, SQL: `ALTER TABLE things ADD COLUMN n BIGINT NOT NULL DEFAULT 0;
		CREATE INDEX things_n ON things (n);`},
}

func TestMigrateOnceAndQueriesOnBothDialects(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	for range 2 { // the second start applies nothing
		if err := db.Migrate(ctx, "test", testMigrations); err != nil {
			t.Fatal(err)
		}
	}
	var id int64
	err := db.QueryRowContext(ctx, `INSERT INTO things (name, data, n) VALUES ($1, $2, $3) RETURNING id`, "a", []byte{1, 2}, 7).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	// Upsert written once for both.
	_, err = db.ExecContext(ctx, `INSERT INTO things (name, n) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET n = things.n + $2`, "a", 3)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	var data []byte
	if err := db.QueryRowContext(ctx, `SELECT n, data FROM things WHERE id = $1`, id).Scan(&n, &data); err != nil {
		t.Fatal(err)
	}
	if n != 10 || len(data) != 2 {
		t.Fatalf("n=%d data=%v", n, data)
	}
	_, err = db.ExecContext(ctx, `INSERT INTO things (name) VALUES ($1)`, "a")
	if !IsUniqueViolation(err) {
		t.Fatalf("want a unique violation, got %v", err)
	}
	var count int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE component = $1`, "test").Scan(&count); err != nil || count != 2 {
		t.Fatalf("migrations recorded: %d, %v", count, err)
	}
}

func TestTransactionRollsBack(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	if err := db.Migrate(ctx, "test", testMigrations); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := db.WithTx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO things (name) VALUES ($1)`, "x"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	err = db.QueryRowContext(ctx, `SELECT id FROM things WHERE name = $1`, "x").Scan(new(int64))
	if !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("rolled-back row is visible: %v", err)
	}
}

// Concurrent writers on SQLite queue instead of failing "database is locked".
func TestConcurrentWriters(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	if err := db.Migrate(ctx, "test", testMigrations); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				errs <- db.WithTx(ctx, func(tx *Tx) error {
					var n int64
					if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM things`).Scan(&n); err != nil {
						return err
					}
					_, err := tx.ExecContext(ctx, `INSERT INTO things (name, n) VALUES ($1, $2)`, hex.EncodeToString([]byte{byte(w), byte(i)}), n)
					return err
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var count int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM things`).Scan(&count); err != nil || count != 400 {
		t.Fatalf("count = %d, %v", count, err)
	}
}

// Several processes starting at once on one database all succeed and
// apply each migration once.
func TestConcurrentMigrations(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- db.Migrate(ctx, "concurrent", testMigrations)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var count int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE component = $1`, "concurrent").Scan(&count); err != nil || count != 2 {
		t.Fatalf("migrations recorded: %d, %v", count, err)
	}
}
