package clientapi

import (
	"strconv"
	"strings"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
)

// Query parameters and pagination tokens of the room endpoints.
//
// Tokens that point into a room's timeline are syncapi's: "s" and a
// stream position, meaning "after the event at this position", so that
// /context's start and end, /relations' next_batch and /sync's tokens
// can be given to /messages and /relations alike. A full /sync token
// ("s42_7_3") is read for its first, room, position. Tokens that are not
// positions carry another prefix: "p" (public rooms, an offset),
// "t" (threads, the latest reply position of the last thread returned),
// "h" (hierarchy, an offset).

const clientV1 = "/_matrix/client/v1"

func formatPosToken(prefix string, pos int64) string { return prefix + strconv.FormatInt(pos, 10) }

// parsePosToken reads a token of the given prefix; "" gives 0.
func parsePosToken(param, prefix, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	digits, ok := strings.CutPrefix(s, prefix)
	if prefix == "s" {
		digits, _, _ = strings.Cut(digits, "_")
	}
	if !ok || digits == "" || digits[0] == '+' || digits[0] == '-' {
		return 0, mxerr.InvalidParam("%s: malformed token %q", param, s)
	}
	pos, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, mxerr.InvalidParam("%s: malformed token %q", param, s)
	}
	return pos, nil
}

// queryLimit reads a positive integer parameter, def when absent, capped.
func queryLimit(req *httputil.Request, name string, def, maxValue int) (int, error) {
	v := req.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, mxerr.InvalidParam("%s: %q is not a non-negative integer", name, v)
	}
	return min(n, maxValue), nil
}

// queryBool reads "true" or "false" (absent: false).
func queryBool(req *httputil.Request, name string) (bool, error) {
	switch v := req.URL.Query().Get(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, mxerr.InvalidParam("%s: %q is neither true nor false", name, v)
	}
}

// eventIDParam reads the eventId path parameter.
func eventIDParam(req *httputil.Request) (string, error) {
	eventID := req.PathValue("eventId")
	if !mxid.EventID(eventID) {
		return "", mxerr.InvalidParam("%q is not an event ID", eventID)
	}
	return eventID, nil
}

// aliasParam reads the roomAlias path parameter.
func aliasParam(req *httputil.Request) (string, error) {
	alias := req.PathValue("roomAlias")
	if !mxid.RoomAlias(alias) {
		return "", mxerr.InvalidParam("%q is not a room alias", alias)
	}
	return alias, nil
}
