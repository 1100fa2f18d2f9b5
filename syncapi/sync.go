package syncapi

import (
	"context"
	"strconv"
	"time"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// maxTimeout bounds how long a sync waits, whatever the client asks:
// proxies and load balancers cut longer requests.
const maxTimeout = 60 * time.Second

// syncRequest is a parsed /sync request.
type syncRequest struct {
	device    *userapi.Device
	initial   bool  // no since token
	since     int64 // the position the client has seen
	fullState bool
	timeout   time.Duration
	filter    *syncFilter
}

// parseSyncRequest reads /sync's query parameters; any malformed one is
// M_INVALID_PARAM.
func parseSyncRequest(req *httputil.Request) (*syncRequest, error) {
	q := req.URL.Query()
	sr := &syncRequest{device: req.Device, initial: true}
	if v := q.Get("since"); v != "" {
		pos, err := parseToken("since", v)
		if err != nil {
			return nil, err
		}
		sr.initial, sr.since = false, pos
	}
	if v := q.Get("timeout"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, mxerr.InvalidParam("timeout: %q is not a number of milliseconds", v)
		}
		// A negative timeout is read as no wait, as other servers do.
		sr.timeout = min(time.Duration(max(ms, 0))*time.Millisecond, maxTimeout)
	}
	switch v := q.Get("full_state"); v {
	case "", "false":
	case "true":
		sr.fullState = true
	default:
		return nil, mxerr.InvalidParam("full_state: %q is neither true nor false", v)
	}
	// Presence is not implemented: the value is checked, then ignored.
	switch v := q.Get("set_presence"); v {
	case "", "online", "offline", "unavailable":
	default:
		return nil, mxerr.InvalidParam("set_presence: %q is not online, offline or unavailable", v)
	}
	f, err := parseSyncFilter(q.Get("filter"))
	if err != nil {
		return nil, err
	}
	sr.filter = f
	return sr, nil
}

// sync serves GET /sync. An incremental sync with nothing new waits until
// the notifier reports an event for the user or the timeout passes; an
// initial or full-state sync answers at once, as the spec says.
func (s *SyncAPI) sync(req *httputil.Request) (any, error) {
	sr, err := parseSyncRequest(req)
	if err != nil {
		return nil, err
	}
	ctx := req.Context()
	deadline := time.Now().Add(sr.timeout)
	for {
		now, err := s.reader.MaxPos(ctx)
		if err != nil {
			return nil, err
		}
		// A token past the database's end (a database restored from a
		// backup) is kept rather than sent backwards.
		now = max(now, sr.since)
		resp, err := s.buildSync(ctx, sr, now)
		if err != nil {
			return nil, err
		}
		if sr.initial || sr.fullState || !resp.empty() {
			return resp, nil
		}
		// An event may have been stored after MaxPos was read: the notifier
		// remembers it and wait returns at once. A wake for an event the
		// filter then drops builds an empty response and waits again.
		if !s.waitForNews(ctx, sr.device.UserID, now, deadline) {
			return resp, nil
		}
	}
}

// waitForNews waits for an event after pos that concerns userID (true), or
// for the deadline, the client going away or shutdown (false).
func (s *SyncAPI) waitForNews(ctx context.Context, userID string, pos int64, deadline time.Time) bool {
	d := time.Until(deadline)
	if d <= 0 {
		return false
	}
	woken, stop := s.notifier.wait(userID, pos)
	defer stop()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-woken:
		return true
	case <-timer.C:
	case <-ctx.Done():
	case <-s.done:
	}
	return false
}
