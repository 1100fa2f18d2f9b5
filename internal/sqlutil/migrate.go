package sqlutil

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Migration is one numbered schema change of a component. Released
// migrations are never edited: a change is a new migration.
type Migration struct {
	Version int
	SQL     string // statements separated by ";" on their own or at line end
}

const migrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	component TEXT NOT NULL,
	version BIGINT NOT NULL,
	applied_ms BIGINT NOT NULL,
	PRIMARY KEY (component, version)
)`

// Migrate applies the component's migrations that have not run yet, each in
// its own transaction, in version order. Several processes may start at
// once: a migration recorded by another one is skipped.
func (db *DB) Migrate(ctx context.Context, component string, migrations []Migration) error {
	err := db.WithTx(ctx, func(tx *Tx) error {
		if err := db.lockMigrations(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, migrationsTable)
		return err
	})
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for i, m := range migrations {
		if m.Version != i+1 {
			return fmt.Errorf("%s migrations: version %d at position %d", component, m.Version, i+1)
		}
		err := db.WithTx(ctx, func(tx *Tx) error {
			if err := db.lockMigrations(ctx, tx); err != nil {
				return err
			}
			var v int
			err := tx.QueryRowContext(ctx, `SELECT version FROM schema_migrations WHERE component = $1 AND version = $2`, component, m.Version).Scan(&v)
			if err == nil {
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			for _, stmt := range splitStatements(m.SQL) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("%q: %w", firstLine(stmt), err)
				}
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (component, version, applied_ms) VALUES ($1, $2, $3)`,
				component, m.Version, nowMS())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s to version %d: %w", component, m.Version, err)
		}
	}
	return nil
}

func splitStatements(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ";") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// lockMigrations serialises concurrent start-ups on one PostgreSQL
// database (even CREATE TABLE IF NOT EXISTS races there); SQLite's
// immediate transactions already do.
func (db *DB) lockMigrations(ctx context.Context, tx *Tx) error {
	if db.Dialect != Postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7361)`)
	return err
}
