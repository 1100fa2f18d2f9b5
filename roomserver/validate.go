package roomserver

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// isJSONObject tells whether raw is a JSON object.
func isJSONObject(raw json.RawMessage) bool {
	trimmed := bytes.TrimSpace(raw)
	return len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed)
}

// checkUserID validates a user ID parameter.
func checkUserID(what, id string) error {
	if _, err := spec.NewUserID(id, true); err != nil {
		return mxerr.InvalidParam("%s %q is not a valid user ID", what, id)
	}
	return nil
}

// domainOf is the server part of a room ID or alias ("" when there is
// none, as in room version 12 room IDs).
func domainOf(id string) string {
	if i := strings.IndexByte(id, ':'); i >= 0 {
		return id[i+1:]
	}
	return ""
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
