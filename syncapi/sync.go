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
	device      *userapi.Device
	initial     bool      // no since token
	since       streamPos // the positions the client has seen
	fullState   bool
	stateAfter  bool // MSC4222 (state_after.go)
	timeout     time.Duration
	filter      *syncFilter
	setPresence string // "" when the sync leaves presence alone
}

// parseSyncRequest reads /sync's query parameters; any malformed one is
// M_INVALID_PARAM. A filter ID is looked up among the user's filters.
func (s *SyncAPI) parseSyncRequest(req *httputil.Request) (*syncRequest, error) {
	q := req.URL.Query()
	sr := &syncRequest{device: req.Device, initial: true}
	if v := q.Get("since"); v != "" {
		pos, err := parseStreamToken("since", v)
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
	// The spec's default is online. "offline" leaves the presence as it is
	// (a client syncing in the background does not make its user online),
	// as Synapse reads it.
	switch v := q.Get("set_presence"); v {
	case "", presenceOnline:
		sr.setPresence = presenceOnline
	case presenceUnavailable:
		sr.setPresence = v
	case presenceOffline:
	default:
		return nil, mxerr.InvalidParam("set_presence: %q is not online, offline or unavailable", v)
	}
	f, err := s.syncFilterParam(req.Context(), req.Device.UserID, q.Get("filter"))
	if err != nil {
		return nil, err
	}
	sr.filter = f
	if sr.stateAfter, err = parseStateAfter(q); err != nil {
		return nil, err
	}
	return sr, nil
}

// sync serves GET /sync. An incremental sync with nothing new waits until
// the notifier reports an event for the user or the timeout passes; an
// initial or full-state sync answers at once, as the spec says.
func (s *SyncAPI) sync(req *httputil.Request) (any, error) {
	sr, err := s.parseSyncRequest(req)
	if err != nil {
		return nil, err
	}
	ctx := req.Context()
	if s.presenceEnabled && sr.setPresence != "" {
		if err := s.setPresence(ctx, sr.device.UserID, sr.setPresence, nil, false); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(sr.timeout)
	for {
		now, err := s.currentPos(ctx)
		if err != nil {
			return nil, err
		}
		// A token past the database's end (a database restored from a
		// backup, a process whose stream lags) is kept rather than sent
		// backwards.
		now = now.union(sr.since)
		if now, err = s.prepareToDevice(ctx, sr, now); err != nil { // todevice.go
			return nil, err
		}
		// The key counts (a call to the userapi) are read beside the rest,
		// and only for a response that may go out: one with nothing after
		// the token is empty (buildSync reads nothing then either).
		var keyCounts func() (map[string]int, []string)
		if sr.initial || sr.fullState || now.after(sr.since) {
			keyCounts = s.keyCountsBeside(ctx, sr.device) // devicelists_sync.go
		}
		resp, err := s.buildSync(ctx, sr, now)
		if err == nil {
			err = s.addE2EE(ctx, sr, now, resp)
		}
		if keyCounts != nil {
			otk, fallback := keyCounts()
			if err == nil {
				resp.DeviceOneTimeKeysCount, resp.DeviceUnusedFallbackKeyTypes = otk, fallback
			}
		}
		if err != nil {
			return nil, err
		}
		if sr.initial || sr.fullState || !resp.empty() {
			return resp, nil
		}
		// A change may have been stored after the positions were read: the
		// notifier remembers it and wait returns at once. A wake for
		// something the filter then drops builds an empty response and
		// waits again.
		if !s.waitForNews(ctx, sr.device.UserID, now, deadline) {
			return resp, nil
		}
	}
}

// currentPos reads the end of every stream. The typing position comes
// first: typers are read later, so they are at least as new as the token.
func (s *SyncAPI) currentPos(ctx context.Context) (streamPos, error) {
	typing := s.notifier.typing.position()
	room, err := s.reader.MaxPos(ctx)
	if err != nil {
		return streamPos{}, err
	}
	stream, err := s.store.maxPos(ctx)
	if err != nil {
		return streamPos{}, err
	}
	return streamPos{Room: room, Stream: stream, Typing: typing}, nil
}

// waitForNews waits for a change after pos that concerns userID (true), or
// for the deadline, the client going away or shutdown (false).
func (s *SyncAPI) waitForNews(ctx context.Context, userID string, pos streamPos, deadline time.Time) bool {
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
