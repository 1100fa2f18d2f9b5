package mediaapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// Waiting for a pending async upload: the spec's default timeout_ms and
// the most this server waits whatever the client asks.
const (
	defaultWait = 20 * time.Second
	maxWait     = 60 * time.Second
	pollEvery   = 250 * time.Millisecond
)

// access is what a request may reach.
type access struct {
	// fetch: remote media not in the cache may be fetched for it.
	fetch bool
	// beforeMS, when set, limits it to media uploaded (or first fetched)
	// before then: the legacy endpoints under a freeze.
	beforeMS int64
}

// access decides for the authenticated endpoints (everything) and the
// legacy unauthenticated /_matrix/media/v3 ones: everything with
// media.legacy_unauthenticated (allow_remote=false keeping to the cache,
// as the spec asks of servers falling back to them), only media older
// than media.legacy_unauthenticated_until under a freeze, else nothing.
func (m *MediaAPI) access(req *httputil.Request, legacy bool) (access, error) {
	switch {
	case !legacy:
		return access{fetch: true}, nil
	case m.cfg.LegacyUnauthenticated:
		return access{fetch: req.URL.Query().Get("allow_remote") != "false"}, nil
	case m.freezeMS > 0:
		return access{beforeMS: m.freezeMS}, nil
	}
	return access{}, mxerr.NotFound("unauthenticated media endpoints are disabled; use /_matrix/client/v1/media")
}

// mediaRef reads and checks the mxc URI of the request's path: a valid
// server name and a media ID of the spec's alphabet, refused before any
// lookup (no path tricks reach the store or a remote server).
func mediaRef(req *httputil.Request) (origin, mediaID string, err error) {
	origin, mediaID = req.PathValue("serverName"), req.PathValue("mediaId")
	if _, _, ok := spec.ParseAndValidateServerName(spec.ServerName(origin)); !ok || !ValidMediaID(mediaID) {
		return "", "", mxerr.NotFound("unknown media")
	}
	return origin, mediaID, nil
}

// lookup finds the media of an mxc URI for a request allowed acc: local
// media (waiting up to timeout_ms for a pending async upload), or remote
// media from the cache, fetched into it when not there and fetchFull.
// It returns nil, nil for remote media that is neither cached nor
// fetched (a thumbnail request then asks the remote server for one).
func (m *MediaAPI) lookup(ctx context.Context, origin, mediaID string, q url.Values, acc access, fetchFull bool) (*Media, error) {
	var md *Media
	var err error
	if origin == m.serverName {
		md, err = m.awaitLocal(ctx, mediaID, q)
	} else {
		md, err = m.db.media(ctx, origin, mediaID)
		if err == nil && md == nil {
			if !acc.fetch || m.remote() == nil {
				return nil, mxerr.NotFound("unknown media")
			}
			if !fetchFull {
				return nil, nil
			}
			md, err = m.fetchRemote(ctx, origin, mediaID)
		}
	}
	switch {
	case err != nil:
		return nil, err
	case md == nil || md.Quarantined || md.Pending():
		return nil, mxerr.NotFound("unknown media")
	case acc.beforeMS > 0 && md.UploadedMS >= acc.beforeMS:
		return nil, mxerr.NotFound("this media is only served on /_matrix/client/v1/media (with an access token)")
	}
	return md, nil
}

// awaitLocal finds local media, waiting up to timeout_ms for a pending
// async upload to be filled.
func (m *MediaAPI) awaitLocal(ctx context.Context, mediaID string, q url.Values) (*Media, error) {
	wait := defaultWait
	if s := q.Get("timeout_ms"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms < 0 {
			return nil, mxerr.InvalidParam("timeout_ms must be a non-negative integer")
		}
		wait = min(time.Duration(ms)*time.Millisecond, maxWait)
	}
	deadline, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		md, err := m.db.media(ctx, m.serverName, mediaID)
		switch {
		case err != nil:
			return nil, err
		case md == nil || md.Quarantined || !md.Pending():
			return md, nil
		case md.ExpiresMS <= nowMS():
			return nil, nil
		}
		select {
		case <-deadline.Done():
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, mxerr.New(http.StatusGatewayTimeout, "M_NOT_YET_UPLOADED", "the content has not been uploaded yet")
		case <-time.After(pollEvery):
		}
	}
}

// download answers GET .../download/{serverName}/{mediaId}[/{fileName}].
func (m *MediaAPI) download(legacy bool) httputil.RawHandler {
	return func(w http.ResponseWriter, req *httputil.Request) error {
		origin, mediaID, err := mediaRef(req)
		if err != nil {
			return err
		}
		acc, err := m.access(req, legacy)
		if err != nil {
			return err
		}
		md, err := m.lookup(req.Context(), origin, mediaID, req.URL.Query(), acc, true)
		if err != nil {
			return err
		}
		name := md.UploadName
		if override := req.PathValue("fileName"); override != "" {
			name = override
		}
		return m.serveContent(w, req, md.SHA256, md.ContentType, name)
	}
}

// serveContent streams stored content with the spec's protective headers;
// http.ServeContent handles Range and conditional requests.
func (m *MediaAPI) serveContent(w http.ResponseWriter, req *httputil.Request, key, contentType, name string) error {
	blob, err := m.store.Open(req.Context(), key)
	if errors.Is(err, ErrNotFound) {
		req.Log.Error("media row without stored content", "key", key)
		return mxerr.NotFound("unknown media")
	}
	if err != nil {
		return err
	}
	defer blob.Close()
	h := w.Header()
	setSecurityHeaders(h)
	h.Set("Content-Type", contentType)
	h.Set("Content-Disposition", contentDisposition(contentType, name))
	// Content never changes under a given key (the ETag is its hash).
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	h.Set("ETag", `"`+key+`"`)
	http.ServeContent(w, req.Request, "", blob.ModTime(), blob)
	return nil
}

// setSecurityHeaders: the spec's recommended sandboxing of served media,
// so that a hostile file opened directly in a browser cannot run script
// with the server's origin.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
}
