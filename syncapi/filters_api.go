package syncapi

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// maxFilterBytes bounds a stored or inline filter.
const maxFilterBytes = 64 << 10

// postFilter serves POST /user/{userId}/filter.
func (s *SyncAPI) postFilter(req *httputil.Request) (any, error) {
	userID, err := selfOnly(req, "create filters")
	if err != nil {
		return nil, err
	}
	body, err := readObject(req, maxFilterBytes)
	if err != nil {
		return nil, err
	}
	if _, err := decodeFilter(body, mxerr.BadJSON); err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		return nil, mxerr.NotJSON("body is not valid JSON")
	}
	var id int64
	err = s.store.db.QueryRowContext(req.Context(),
		`INSERT INTO sy_filters (user_id, filter) VALUES ($1, $2) RETURNING filter_id`,
		userID, compact.String()).Scan(&id)
	if err != nil {
		return nil, fmt.Errorf("store filter: %w", err)
	}
	return map[string]string{"filter_id": strconv.FormatInt(id, 10)}, nil
}

// getFilter serves GET /user/{userId}/filter/{filterId}.
func (s *SyncAPI) getFilter(req *httputil.Request) (any, error) {
	userID, err := selfOnly(req, "read filters")
	if err != nil {
		return nil, err
	}
	raw, err := s.store.filter(req.Context(), userID, req.PathValue("filterId"))
	if err != nil {
		return nil, err
	}
	return json.RawMessage(raw), nil
}

// filter reads a stored filter of userID; M_NOT_FOUND when there is none
// with that ID (another user's filters included).
func (st *store) filter(ctx context.Context, userID, filterID string) ([]byte, error) {
	id, err := strconv.ParseInt(filterID, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != filterID {
		return nil, mxerr.NotFound("no filter %q", filterID)
	}
	var raw string
	err = st.db.QueryRowContext(ctx, `SELECT filter FROM sy_filters WHERE filter_id = $1 AND user_id = $2`, id, userID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, mxerr.NotFound("no filter %q", filterID)
	}
	if err != nil {
		return nil, fmt.Errorf("read filter %s: %w", filterID, err)
	}
	return []byte(raw), nil
}

// syncFilterParam reads /sync's filter parameter: inline JSON (told by its
// leading "{", as the spec says) or the ID of one of the user's filters.
func (s *SyncAPI) syncFilterParam(ctx context.Context, userID, v string) (*syncFilter, error) {
	switch {
	case v == "":
		return &syncFilter{}, nil
	case len(v) > maxFilterBytes:
		return nil, mxerr.InvalidParam("filter: over %d bytes", maxFilterBytes)
	case strings.HasPrefix(v, "{"):
		return decodeFilter([]byte(v), func(format string, args ...any) *mxerr.Error {
			return mxerr.InvalidParam("filter: "+format, args...)
		})
	}
	raw, err := s.store.filter(ctx, userID, v)
	if me, ok := mxerr.As(err); ok && me.Code == "M_NOT_FOUND" {
		// A bad parameter of /sync, as Synapse reports it.
		return nil, mxerr.InvalidParam("filter: unknown filter ID %q", v)
	}
	if err != nil {
		return nil, err
	}
	// A stored filter was checked when stored; a failure here is a filter
	// written by an older version with other rules.
	return decodeFilter(raw, func(format string, args ...any) *mxerr.Error {
		return mxerr.InvalidParam("stored filter "+v+": "+format, args...)
	})
}

// selfOnly checks that the path's userId is the requester: users may only
// act on their own filters, account data and typing state.
func selfOnly(req *httputil.Request, what string) (string, error) {
	userID := req.PathValue("userId")
	if userID != req.Device.UserID {
		return "", mxerr.Forbidden("you may not %s for another user", what)
	}
	return userID, nil
}

// readObject reads a request body that must be a JSON object of at most
// limit bytes, and returns it as is.
func readObject(req *httputil.Request, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, mxerr.TooLarge("request body is over %d bytes", tooLarge.Limit)
		}
		return nil, mxerr.NotJSON("could not read body: %v", err)
	}
	if int64(len(data)) > limit {
		return nil, mxerr.TooLarge("body is over %d bytes", limit)
	}
	data = bytes.TrimSpace(data)
	if !json.Valid(data) {
		return nil, mxerr.NotJSON("body is not valid JSON")
	}
	if len(data) == 0 || data[0] != '{' {
		return nil, mxerr.NotJSON("body must be a JSON object")
	}
	return data, nil
}
