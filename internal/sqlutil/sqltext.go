package sqlutil

// sqlPiece is one run of query text as the dialect rewrite sees it.
type sqlPiece struct {
	kind  pieceKind
	text  string
	param int // the N of $N, for a pieceParam
}

type pieceKind int

const (
	pieceCode     pieceKind = iota // SQL proper: keywords, names, operators
	pieceVerbatim                  // a '…' string, a "…" name or a comment: copied as is
	pieceParam                     // a $N placeholder
)

// splitSQL cuts a PostgreSQL query into code, literals and placeholders,
// so the rewrite never touches a "$1" inside a string or a comment. It
// knows what Chappe's queries use: '…' strings (a quote inside doubled),
// "…" names, -- and /* */ comments. Backslash is an ordinary character in
// '…', as in PostgreSQL (standard_conforming_strings) and SQLite.
// Dollar-quoted strings are PostgreSQL-only, so a query shared with
// SQLite has none.
func splitSQL(q string, yield func(sqlPiece)) {
	code := 0 // start of the code run not yet yielded
	flush := func(end int) {
		if end > code {
			yield(sqlPiece{kind: pieceCode, text: q[code:end]})
		}
	}
	for i := 0; i < len(q); {
		c := q[i]
		var end int // end of a verbatim piece or a placeholder starting at i
		switch {
		case c == '\'' || c == '"':
			end = closingQuote(q, i+1, c)
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			end = len(q)
			for j := i + 2; j < len(q); j++ {
				if q[j] == '\n' {
					end = j
					break
				}
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			end = len(q)
			for j := i + 2; j+1 < len(q); j++ {
				if q[j] == '*' && q[j+1] == '/' {
					end = j + 2
					break
				}
			}
		case c == '$' && i+1 < len(q) && isDigit(q[i+1]) && (i == 0 || !isNameByte(q[i-1])):
			n, j := 0, i+1
			for ; j < len(q) && isDigit(q[j]); j++ {
				if n < 1<<20 { // far past any real parameter count; no overflow
					n = n*10 + int(q[j]-'0')
				}
			}
			flush(i)
			yield(sqlPiece{kind: pieceParam, text: q[i:j], param: n})
			i, code = j, j
			continue
		default:
			i++
			continue
		}
		flush(i)
		yield(sqlPiece{kind: pieceVerbatim, text: q[i:end]})
		i, code = end, end
	}
	flush(len(q))
}

// closingQuote returns the end of a quoted run whose body starts at i: just
// past the closing quote, a doubled quote being part of the body; or the
// end of q when it is unterminated (the database reports that).
func closingQuote(q string, i int, quote byte) int {
	for i < len(q) {
		if q[i] == quote {
			if i+1 < len(q) && q[i+1] == quote {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return len(q)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isNameByte tells whether c may be part of an unquoted name; PostgreSQL
// allows $ after a name's first letter, so "a$1" is a name, not a placeholder.
func isNameByte(c byte) bool {
	return c == '_' || c == '$' || isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}
