// Package sqlutil is Chappe's one SQL layer. Every query is written once, in
// PostgreSQL's syntax with $1-style placeholders; the dialect (dialect.go)
// rewrites the few things SQLite spells differently. Components get a *DB,
// run their migrations with Migrate and never look at the driver.
package sqlutil

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // the embedded default database
)

// DB is a database handle that rewrites queries for its dialect.
type DB struct {
	sql     *sql.DB
	Dialect Dialect
	Pool    *pgxpool.Pool // nil on SQLite; used for pool metrics

	rewritten sync.Map // query text -> dialect text

	// SQLite parses a statement again on every call unless it is kept
	// prepared (a fifth of the CPU of a busy server went to parsing);
	// pgx's pool already caches PostgreSQL's statements per connection.
	stmts     sync.Map // query text -> *sql.Stmt
	nstmts    atomic.Int64
	preparing sync.Map // query text -> being prepared by txStmt

	// writer serialises this process's SQLite transactions. SQLite has one
	// writer at a time anyway; when two collide, the second sleeps in
	// SQLite's busy handler (1, 2, 5... ms) however soon the first ends,
	// which cost sends a millisecond each once the push consumer wrote
	// beside the roomserver. Waiting here wakes at the first one's end.
	// nil on PostgreSQL.
	writer chan struct{}

	checkpoints *checkpointer // SQLite's log copied back beside the writer (checkpoint.go)
}

// writerWait bounds the wait for the SQLite writer, as busy_timeout did.
const writerWait = 30 * time.Second

// maxCachedStatements bounds the statement cache: queries built with a
// variable number of placeholders would otherwise grow it for ever.
const maxCachedStatements = 2000

// stmt is the prepared statement for query on SQLite, or nil (PostgreSQL,
// a full cache, or a statement that does not prepare: the direct path then
// reports the error).
func (db *DB) stmt(ctx context.Context, query string) *sql.Stmt {
	if db.Dialect != SQLite {
		return nil
	}
	if v, ok := db.stmts.Load(query); ok {
		return v.(*sql.Stmt)
	}
	if db.nstmts.Load() >= maxCachedStatements {
		return nil
	}
	st, err := db.sql.PrepareContext(ctx, db.q(query))
	if err != nil {
		return nil
	}
	if prev, loaded := db.stmts.LoadOrStore(query, st); loaded {
		_ = st.Close()
		return prev.(*sql.Stmt)
	}
	db.nstmts.Add(1)
	return st
}

// txStmt is stmt for a transaction. Preparing takes a connection from the
// pool; a transaction already holds one, and with the pool exhausted by
// transactions queued behind it for SQLite's write lock it would wait for
// ever. So a transaction only uses a statement already prepared, and has
// a missing one prepared in the background for next time.
func (db *DB) txStmt(query string) *sql.Stmt {
	if db.Dialect != SQLite {
		return nil
	}
	if v, ok := db.stmts.Load(query); ok {
		return v.(*sql.Stmt)
	}
	if _, busy := db.preparing.LoadOrStore(query, true); !busy && db.nstmts.Load() < maxCachedStatements {
		go func() {
			defer db.preparing.Delete(query)
			db.stmt(context.Background(), query)
		}()
	}
	return nil
}

// Options tunes the connection pool.
type Options struct {
	MaxOpenConns int
}

// Open connects to "postgres://..." (PostgreSQL through a pgx pool) or to a
// SQLite file given as "sqlite:///path/to/file.db", "file:..." or a bare path.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return openPostgres(ctx, dsn, opts)
	}
	return openSQLite(ctx, dsn, opts)
}

func openPostgres(ctx context.Context, dsn string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if opts.MaxOpenConns > 0 {
		cfg.MaxConns = int32(opts.MaxOpenConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	return &DB{sql: stdlib.OpenDBFromPool(pool), Dialect: Postgres, Pool: pool}, nil
}

func openSQLite(ctx context.Context, dsn string, opts Options) (*DB, error) {
	path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite://"), "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		return nil, errors.New("empty sqlite path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	db, err := sql.Open("sqlite", sqliteDSN(path, 30_000))
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	n := opts.MaxOpenConns
	if n <= 0 {
		n = 8
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	writer := make(chan struct{}, 1)
	checkpoints, err := startCheckpointer(ctx, sqliteDSN(path, checkpointReaderWait), writer)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &DB{sql: db, Dialect: SQLite, writer: writer, checkpoints: checkpoints}, nil
}

// sqliteDSN is the driver's name for the database file at path, with the
// connection settings, and a wait of busyMS for another connection's lock.
func sqliteDSN(path string, busyMS int) string {
	// WAL lets readers run beside the writer; _txlock=immediate takes the
	// write lock at BEGIN so two writers queue on busy_timeout instead of
	// failing with "database is locked" when a read lock is upgraded.
	// synchronous(NORMAL) in WAL mode survives a process crash (kill -9);
	// FULL also survives power loss and is chosen by config.
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyMS))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "wal_autocheckpoint(0)")        // checkpoint.go does it beside the writer
	q.Add("_pragma", "journal_size_limit(67108864)") // the log file shrinks back to 64 MB after a burst
	q.Add("_pragma", "temp_store(MEMORY)")           // statement journals of multi-row writes: in memory, not a temp file written page by page
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// Close closes the statements and the pool.
func (db *DB) Close() error {
	db.checkpoints.close()
	db.stmts.Range(func(_, v any) bool {
		_ = v.(*sql.Stmt).Close()
		return true
	})
	err := db.sql.Close()
	if db.Pool != nil {
		db.Pool.Close()
	}
	return err
}

// Stats reports the pool's use.
func (db *DB) Stats() sql.DBStats { return db.sql.Stats() }

func (db *DB) q(query string) string {
	if db.Dialect == Postgres {
		return query
	}
	if v, ok := db.rewritten.Load(query); ok {
		return v.(string)
	}
	out := db.Dialect.Rewrite(query)
	db.rewritten.Store(query, out)
	return out
}

// ExecContext runs a statement.
func (db *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := db.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return db.sql.ExecContext(ctx, db.q(query), args...)
}

// QueryContext runs a query returning rows.
func (db *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := db.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.sql.QueryContext(ctx, db.q(query), args...)
}

// QueryRowContext runs a query returning at most one row.
func (db *DB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := db.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.sql.QueryRowContext(ctx, db.q(query), args...)
}

// Tx is a transaction with the same query methods as DB.
type Tx struct {
	tx *sql.Tx
	db *DB
}

func (t *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.db.txStmt(query); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, t.db.q(query), args...)
}
func (t *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.db.txStmt(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, t.db.q(query), args...)
}
func (t *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.db.txStmt(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, t.db.q(query), args...)
}

// Querier is what both DB and Tx offer, so storage functions can run inside
// or outside a transaction.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// WithTx runs fn in a transaction, committing when fn returns nil.
func (db *DB) WithTx(ctx context.Context, fn func(tx *Tx) error) error {
	if db.writer != nil {
		wait := time.NewTimer(writerWait)
		select {
		case db.writer <- struct{}{}:
			wait.Stop()
			defer func() { <-db.writer }()
		case <-ctx.Done():
			wait.Stop()
			return fmt.Errorf("begin transaction: %w", ctx.Err())
		case <-wait.C:
			return errors.New("begin transaction: the database stayed busy for 30 s")
		}
	}
	sqlTx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(&Tx{tx: sqlTx, db: db}); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if db.checkpoints != nil {
		db.checkpoints.committed()
	}
	return nil
}

// IsUniqueViolation tells whether err is a unique-constraint failure.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "SQLSTATE 23505")
}
