package sqlutil

import (
	"regexp"
	"strings"
)

// Dialect names a database family. All of Chappe's SQL is written for
// PostgreSQL; Rewrite is the only place where SQLite's spelling differs.
type Dialect int

const (
	Postgres Dialect = iota
	SQLite
)

func (d Dialect) String() string {
	if d == SQLite {
		return "sqlite"
	}
	return "postgres"
}

var (
	placeholder = regexp.MustCompile(`\$(\d+)`)
	ddlWords    = strings.NewReplacer(
		"BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT",
		"BYTEA", "BLOB",
	)
)

// Rewrite turns PostgreSQL text into the dialect's: for SQLite, $N becomes
// ?N (SQLite's numbered parameter, so one argument may be used twice) and
// the column types SQLite lacks are renamed.
func (d Dialect) Rewrite(query string) string {
	if d == Postgres {
		return query
	}
	return ddlWords.Replace(placeholder.ReplaceAllString(query, "?$1"))
}
