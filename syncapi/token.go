package syncapi

import (
	"strconv"
	"strings"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// A token is "s" followed by a position of the roomserver's output stream,
// the position of the last event the client has seen ("s42"). The position
// is the database's, so any syncapi process can continue from a token
// another one issued. /sync's next_batch, a timeline's prev_batch and
// /messages' start and end are all tokens of this one kind.
const tokenPrefix = "s"

func formatToken(pos int64) string {
	return tokenPrefix + strconv.FormatInt(pos, 10)
}

// parseToken reads the token given as query parameter param.
func parseToken(param, s string) (int64, error) {
	digits, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok || digits == "" || digits[0] == '+' || digits[0] == '-' {
		return 0, mxerr.InvalidParam("%s: malformed token %q", param, s)
	}
	pos, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, mxerr.InvalidParam("%s: malformed token %q", param, s)
	}
	return pos, nil
}
