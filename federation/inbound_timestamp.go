package federation

import (
	"net/url"
	"strconv"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// onTimestampToEvent serves GET /timestamp_to_event/{roomId}: the ID of
// the event closest to ts in the direction dir among those the asking
// server may see (its history visibility, as for /event and /backfill).
// The room must be known here, its ACL must let the server in, and the
// server must have had a member in it (403 otherwise, like the other
// history endpoints).
func (f *Federation) onTimestampToEvent(r *InboundRequest) (any, error) {
	ctx := r.Context()
	roomID := r.HTTP.PathValue("roomId")
	q := r.HTTP.URL.Query()
	backwards, err := httputil.Direction(q, "")
	if err != nil {
		return nil, err
	}
	ts, err := timestampParam(q)
	if err != nil {
		return nil, err
	}
	if err := f.roomAccess(ctx, roomID, r.Origin); err != nil {
		return nil, err
	}
	ev, err := f.reader.ClosestEventForServer(ctx, roomID, r.Origin, ts, backwards)
	if err != nil {
		return nil, err
	}
	if ev == nil {
		return nil, mxerr.NotFound("Unable to find event from %d in %s direction", ts, directionName(backwards))
	}
	return ev, nil
}

// timestampParam reads the required ts parameter: milliseconds since the
// Unix epoch.
func timestampParam(q url.Values) (int64, error) {
	raw := q.Get("ts")
	if raw == "" {
		return 0, mxerr.MissingParam("ts is required")
	}
	ts, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || ts < 0 {
		return 0, mxerr.InvalidParam("ts: %q is not a timestamp in milliseconds", raw)
	}
	return ts, nil
}

func directionName(backwards bool) string {
	if backwards {
		return "backward"
	}
	return "forward"
}
