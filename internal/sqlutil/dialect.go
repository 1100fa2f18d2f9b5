package sqlutil

import "strings"

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

// ddlWords are the column types SQLite spells differently.
var ddlWords = strings.NewReplacer(
	"BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT",
	"BYTEA", "BLOB",
)

// Rewrite turns PostgreSQL text into the dialect's. For SQLite the column
// types SQLite lacks are renamed, and each $N placeholder becomes either a
// bare ? or ?N:
//
//   - ? when the query is one statement whose placeholders are $1, $2, …
//     $N in that order, each once: SQLite numbers bare ?s left to right,
//     so they bind the same arguments. This is the fast form: for every
//     parameter the driver asks SQLite for its name
//     (sqlite3_bind_parameter_name), which walks the statement's list of
//     named parameters; ?N parameters are all in that list, bare ?s are
//     not, so binding N ?Ns costs N² steps and N ?s cost N (a prepared
//     500-row × 8-column insert: 17 ms with ?N, under 1 ms with ?;
//     BenchmarkWideInsertSQLite).
//   - ?N otherwise: an argument used twice or out of order, or several
//     statements in one text (the driver binds each statement on its
//     own, and its bare ?s would start again from the first argument).
//
// Placeholders inside '…' strings, "…" names and comments are left alone.
func (d Dialect) Rewrite(query string) string {
	if d == Postgres {
		return query
	}
	bare := bareParamsFit(query)
	var b strings.Builder
	b.Grow(len(query))
	splitSQL(query, func(p sqlPiece) {
		switch p.kind {
		case pieceCode:
			b.WriteString(ddlWords.Replace(p.text))
		case pieceVerbatim:
			b.WriteString(p.text)
		case pieceParam:
			b.WriteByte('?')
			if !bare {
				b.WriteString(p.text[1:]) // the digits
			}
		}
	})
	return b.String()
}

// bareParamsFit tells whether query's placeholders may all be bare ?s:
// they are $1…$N in order, each once, in a single statement.
func bareParamsFit(query string) bool {
	next, ok := 1, true
	ended := false // a ; has closed a statement
	splitSQL(query, func(p sqlPiece) {
		switch {
		case !ok:
		case ended && (p.kind != pieceCode || strings.TrimSpace(p.text) != ""):
			ok = false // a second statement, or a comment after the first (?N is right either way)
		case p.kind == pieceParam:
			ok = p.param == next
			next++
		case p.kind == pieceCode:
			if i := strings.IndexByte(p.text, ';'); i >= 0 {
				ended = true
				ok = strings.TrimSpace(strings.ReplaceAll(p.text[i+1:], ";", "")) == ""
			}
		}
	})
	return ok
}
