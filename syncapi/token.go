package syncapi

import (
	"strconv"
	"strings"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// A token is "s" followed by up to three positions joined by "_":
//
//		s<room>_<stream>_<typing>     e.g. "s42_7_3"
//
//	  - room is a position of the roomserver's output stream (the last room
//	    event the client has seen), read from the roomserver's tables;
//	  - stream is a position of syncapi's own sy_stream counter, shared by
//	    account data, receipts and presence, read from the database;
//	  - typing is the JetStream sequence of the last message of syncapi's
//	    output stream (SYNC_OUTPUT) that this process had applied; the
//	    sequence is the stream's, the same on every process.
//
// So any syncapi process can continue from a token another one issued. The
// first form, "s42", is still read (stream and typing 0), so that clients
// holding a token from before are sent everything of the new streams once.
// Timeline prev_batch and /messages tokens carry only the room position;
// /messages accepts a full /sync token and uses its room part.
const tokenPrefix = "s"

// streamPos is a position in each of the streams /sync reads.
type streamPos struct {
	Room   int64
	Stream int64
	Typing int64
}

func (p streamPos) String() string {
	return tokenPrefix + strconv.FormatInt(p.Room, 10) + "_" +
		strconv.FormatInt(p.Stream, 10) + "_" + strconv.FormatInt(p.Typing, 10)
}

// after says whether p is past q in any stream.
func (p streamPos) after(q streamPos) bool {
	return p.Room > q.Room || p.Stream > q.Stream || p.Typing > q.Typing
}

// union is the component-wise maximum.
func (p streamPos) union(q streamPos) streamPos {
	return streamPos{Room: max(p.Room, q.Room), Stream: max(p.Stream, q.Stream), Typing: max(p.Typing, q.Typing)}
}

// formatToken is a room-only token (prev_batch, /messages).
func formatToken(pos int64) string {
	return tokenPrefix + strconv.FormatInt(pos, 10)
}

// parseToken reads the room position of the token given as query
// parameter param.
func parseToken(param, s string) (int64, error) {
	p, err := parseStreamToken(param, s)
	return p.Room, err
}

// parseStreamToken reads a token of either form.
func parseStreamToken(param, s string) (streamPos, error) {
	bad := mxerr.InvalidParam("%s: malformed token %q", param, s)
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return streamPos{}, bad
	}
	parts := strings.Split(rest, "_")
	if len(parts) != 1 && len(parts) != 3 {
		return streamPos{}, bad
	}
	var out [3]int64
	for i, digits := range parts {
		if digits == "" || digits[0] == '+' || digits[0] == '-' {
			return streamPos{}, bad
		}
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil {
			return streamPos{}, bad
		}
		out[i] = n
	}
	return streamPos{Room: out[0], Stream: out[1], Typing: out[2]}, nil
}
