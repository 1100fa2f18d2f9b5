package sqlutil

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// With SQLite's automatic checkpoint off, the checkpointer alone keeps the
// write-ahead log small: thousands of small transactions, with readers
// beside them, leave a -wal file far smaller than the pages they wrote,
// and every row is in the database after Close and a fresh Open.
//
// The writer is paced: a serving homeserver commits some 2,000
// transactions a second at most (docs/performance.md), while a bare loop
// of one-row transactions commits ten times as many and outruns any
// checkpoint made beside it (the log then holds what was written during a
// checkpoint's fsync, 10–40 MiB here), which is not what this test is for.
func TestCheckpointerBoundsTheLog(t *testing.T) {
	const txs = 3000
	const writePace = time.Second / 2000
	const maxLog = 8 << 20
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "checkpoint.db")
	db, err := Open(ctx, "sqlite://"+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE INDEX notes_body ON notes (body)`); err != nil {
		t.Fatal(err)
	}

	// Readers keep snapshots open now and then, as a serving homeserver's do.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readErrs := make(chan error, 2)
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n int
				if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM notes`).Scan(&n); err != nil {
					readErrs <- err
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
		})
	}

	var largest int64
	for i := range txs {
		err := db.WithTx(ctx, func(tx *Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO notes (id, body) VALUES ($1, $2)`, i, noteBody(i))
			return err
		})
		if err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
		if i%50 == 0 {
			largest = max(largest, fileSize(t, path+"-wal"))
		}
		time.Sleep(writePace)
	}
	close(stop)
	readers.Wait()
	close(readErrs)
	for err := range readErrs {
		t.Fatalf("reader: %v", err)
	}
	largest = max(largest, fileSize(t, path+"-wal"))
	// Every commit writes at least a table page and an index page (4 KiB
	// each) to the log: 3,000 commits would leave 24 MiB unchecked.
	t.Logf("largest -wal seen: %.2f MiB over %d transactions", float64(largest)/(1<<20), txs)
	if largest > maxLog {
		t.Fatalf("the -wal file reached %d bytes (limit %d)", largest, maxLog)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(ctx, "sqlite://"+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT id, body FROM notes ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for ; rows.Next(); n++ {
		var id int
		var body string
		if err := rows.Scan(&id, &body); err != nil {
			t.Fatal(err)
		}
		if id != n || body != noteBody(n) {
			t.Fatalf("row %d reads (%d, %.20q…)", n, id, body)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != txs {
		t.Fatalf("%d rows after reopening, want %d", n, txs)
	}
}

// Close may be called twice (a test's Cleanup after its own Close).
func TestCloseTwice(t *testing.T) {
	db, err := Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "twice.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	_ = db.Close()
}

func noteBody(i int) string {
	return fmt.Sprintf("%06d-", i) + strings.Repeat("n", 200)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
