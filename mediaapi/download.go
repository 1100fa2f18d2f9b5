package mediaapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

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

// legacy wraps a /_matrix/media/v3 download or thumbnail handler: served
// only when media.legacy_unauthenticated is on.
func (m *MediaAPI) legacy(h httputil.RawHandler) httputil.RawHandler {
	return func(w http.ResponseWriter, req *httputil.Request) error {
		if !m.cfg.LegacyUnauthenticated {
			return mxerr.NotFound("unauthenticated media endpoints are disabled; use /_matrix/client/v1/media")
		}
		return h(w, req)
	}
}

// resolve finds the uploaded media of the request's path, waiting up to
// timeout_ms for a pending async upload.
func (m *MediaAPI) resolve(req *httputil.Request) (*Media, error) {
	serverName, mediaID := req.PathValue("serverName"), req.PathValue("mediaId")
	if serverName == "" || !ValidMediaID(mediaID) {
		return nil, mxerr.NotFound("unknown media")
	}
	wait := defaultWait
	if s := req.URL.Query().Get("timeout_ms"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms < 0 {
			return nil, mxerr.InvalidParam("timeout_ms must be a non-negative integer")
		}
		wait = min(time.Duration(ms)*time.Millisecond, maxWait)
	}
	ctx, cancel := context.WithTimeout(req.Context(), wait)
	defer cancel()
	for {
		// Remote media will be fetched over federation (not yet): until
		// then, only rows already in the table are served.
		md, err := m.db.media(req.Context(), serverName, mediaID)
		if err != nil {
			return nil, err
		}
		switch {
		case md == nil || md.Quarantined:
			return nil, mxerr.NotFound("unknown media")
		case !md.Pending():
			return md, nil
		case md.ExpiresMS <= nowMS():
			return nil, mxerr.NotFound("unknown media")
		}
		select {
		case <-ctx.Done():
			return nil, mxerr.New(http.StatusGatewayTimeout, "M_NOT_YET_UPLOADED", "the content has not been uploaded yet")
		case <-time.After(pollEvery):
		}
	}
}

// download answers GET .../download/{serverName}/{mediaId}[/{fileName}].
func (m *MediaAPI) download(w http.ResponseWriter, req *httputil.Request) error {
	md, err := m.resolve(req)
	if err != nil {
		return err
	}
	name := md.UploadName
	if override := req.PathValue("fileName"); override != "" {
		name = override
	}
	return m.serveContent(w, req, md.SHA256, md.ContentType, name)
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
