package federation

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/mediaapi"
)

// Media over federation: other servers download this server's media from
// the mediaapi of this process (UseMedia), and the mediaapi fetches other
// servers' media through this component (mediaFetcher). Both need the
// mediaapi and the federation in one process; without a local mediaapi the
// federation media endpoints answer 404 M_NOT_FOUND.

// mediaRoutes registers the federation media endpoints (called by
// startRoutes' caller before the listener opens).
func (f *Federation) mediaRoutes() {
	f.handleRaw("GET /_matrix/federation/v1/media/download/{mediaId}", func(w http.ResponseWriter, r *InboundRequest) error {
		m := f.media.Load()
		if m == nil {
			return mxerr.NotFound("media is not served by this process")
		}
		return m.ServeFederationDownload(w, r.HTTP, r.HTTP.PathValue("mediaId"))
	})
	f.handleRaw("GET /_matrix/federation/v1/media/thumbnail/{mediaId}", func(w http.ResponseWriter, r *InboundRequest) error {
		m := f.media.Load()
		if m == nil {
			return mxerr.NotFound("media is not served by this process")
		}
		return m.ServeFederationThumbnail(w, r.HTTP, r.HTTP.PathValue("mediaId"))
	})
}

// UseMedia connects the mediaapi of this process: it serves this server's
// media to other servers and fetches theirs through this component.
func (f *Federation) UseMedia(m *mediaapi.MediaAPI) {
	f.media.Store(m)
	m.SetRemoteFetcher(&mediaFetcher{f: f})
}

// mediaPointer holds the process's mediaapi, set after both started.
type mediaPointer = atomic.Pointer[mediaapi.MediaAPI]

// mediaFetcher is mediaapi.RemoteFetcher over the federation media API.
type mediaFetcher struct{ f *Federation }

// remoteMediaTimeout is how long the other server may take to start
// answering (the spec's timeout_ms, for media still being uploaded).
const remoteMediaTimeout = 20 * time.Second

func (mf *mediaFetcher) Download(ctx context.Context, serverName, mediaID string) (io.ReadCloser, string, string, error) {
	path := "/_matrix/federation/v1/media/download/" + url.PathEscape(mediaID) +
		"?timeout_ms=" + strconv.Itoa(int(remoteMediaTimeout.Milliseconds()))
	return mf.fetch(ctx, serverName, path)
}

func (mf *mediaFetcher) Thumbnail(ctx context.Context, serverName, mediaID string, width, height int, method string, animated bool) (io.ReadCloser, string, string, error) {
	q := url.Values{
		"width":      {strconv.Itoa(width)},
		"height":     {strconv.Itoa(height)},
		"method":     {method},
		"animated":   {strconv.FormatBool(animated)},
		"timeout_ms": {strconv.Itoa(int(remoteMediaTimeout.Milliseconds()))},
	}
	return mf.fetch(ctx, serverName, "/_matrix/federation/v1/media/thumbnail/"+url.PathEscape(mediaID)+"?"+q.Encode())
}

func (mf *mediaFetcher) fetch(ctx context.Context, serverName, path string) (io.ReadCloser, string, string, error) {
	resp, err := mf.f.doSignedStream(ctx, http.MethodGet, serverName, path)
	if err != nil {
		if me, ok := mxerr.As(err); ok {
			return nil, "", "", me
		}
		return nil, "", "", err
	}
	if resp.StatusCode/100 != 2 {
		defer func() { _ = resp.Body.Close() }()
		return nil, "", "", remoteError(resp)
	}
	fm, err := mediaapi.ParseFederationMultipart(resp.Header.Get("Content-Type"), resp.Body)
	if err != nil {
		return nil, "", "", err
	}
	if fm.Location == "" {
		return fm.Body, fm.ContentType, fm.Filename, nil
	}
	return mf.follow(ctx, fm.Location)
}

// follow fetches the content a server redirected to (a plain GET, over
// HTTPS with the federation's trusted authorities).
func (mf *mediaFetcher) follow(ctx context.Context, location string) (io.ReadCloser, string, string, error) {
	u, err := url.Parse(location)
	if err != nil || u.Scheme != "https" {
		return nil, "", "", fmt.Errorf("media redirect to %q refused: https only", location)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", "", fmt.Errorf("media redirect: %w", err)
	}
	resp, err := (&http.Client{Transport: mf.f.out.transportFor("")}).Do(req)
	if err != nil {
		return nil, "", "", fmt.Errorf("media redirect: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		_ = resp.Body.Close()
		return nil, "", "", fmt.Errorf("media redirect: %s answered %d", u.Host, resp.StatusCode)
	}
	filename := ""
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		filename = params["filename"]
	}
	return resp.Body, resp.Header.Get("Content-Type"), filename, nil
}
