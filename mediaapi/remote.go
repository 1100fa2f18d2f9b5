package mediaapi

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// RemoteFetcher gets media from the server of an mxc URI over federation
// (GET /_matrix/federation/v1/media/download|thumbnail, whose answer
// ParseFederationMultipart reads). The federation component implements
// it and hands it to SetRemoteFetcher; without one, remote media that is
// not cached answers 404.
//
// An error that is a *mxerr.Error (the remote server's 404 M_NOT_FOUND,
// 504 M_NOT_YET_UPLOADED, 400 for an image it cannot thumbnail...) is
// passed on to the client as it is; any other error becomes 502.
type RemoteFetcher interface {
	// Download returns the content of mxc://serverName/mediaID; the caller
	// closes body. filename is the remote's Content-Disposition name, or "".
	Download(ctx context.Context, serverName, mediaID string) (body io.ReadCloser, contentType, filename string, err error)
	// Thumbnail returns the remote server's thumbnail at (at least) width x
	// height by method ("crop" or "scale"), animated if asked and possible.
	Thumbnail(ctx context.Context, serverName, mediaID string, width, height int, method string, animated bool) (body io.ReadCloser, contentType, filename string, err error)
}

// SetRemoteFetcher makes remote media reachable: downloads of
// mxc://<other server>/... are fetched through f once, kept in the cache
// (ma_media rows whose origin is that server) and served from it after.
func (m *MediaAPI) SetRemoteFetcher(f RemoteFetcher) {
	m.fetcherMu.Lock()
	defer m.fetcherMu.Unlock()
	m.fetcher = f
}

func (m *MediaAPI) remote() RemoteFetcher {
	m.fetcherMu.RLock()
	defer m.fetcherMu.RUnlock()
	return m.fetcher
}

// remoteFetchTimeout bounds one fetch. The fetch is shared by every
// request for the item (singleflight), so it does not end with the
// request that started it.
const remoteFetchTimeout = 2 * time.Minute

// fetchRemote fetches remote media into the cache, once however many
// requests ask for it at the same time.
func (m *MediaAPI) fetchRemote(ctx context.Context, origin, mediaID string) (*Media, error) {
	v, err, _ := m.flights.Do("download "+origin+"/"+mediaID, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), remoteFetchTimeout)
		defer cancel()
		// A flight that ended just before this one began has filled it.
		if md, err := m.db.media(ctx, origin, mediaID); err != nil || md != nil {
			return md, err
		}
		body, contentType, filename, err := m.remote().Download(ctx, origin, mediaID)
		if err != nil {
			return nil, m.remoteError(origin, err)
		}
		sp, err := m.spoolRemote(body, origin)
		if err != nil {
			return nil, err
		}
		now := nowMS()
		md := &Media{
			Origin: origin, MediaID: mediaID, ContentType: sanitizeContentType(contentType),
			UploadName: sanitizeFilename(filename), Size: sp.size, SHA256: sp.sha256, CreatedMS: now, UploadedMS: now,
		}
		if err := m.put(ctx, sp, func() error { return m.db.insertRemoteMedia(ctx, md) }); err != nil {
			return nil, err
		}
		m.log.Info("remote media cached", "origin", origin, "media_id", mediaID, "size", md.Size)
		return m.db.media(ctx, origin, mediaID)
	})
	if err != nil {
		return nil, err
	}
	return v.(*Media), nil
}

// remoteThumbnail returns the remote server's thumbnail of media not in
// the cache, fetched once and kept in ma_thumbnails under the source
// "mxc://origin/mediaID" (no content hash is known for it).
func (m *MediaAPI) remoteThumbnail(ctx context.Context, origin, mediaID string, size config.ThumbnailSize, animated bool) (*thumbnailRow, error) {
	source := remoteSource(origin, mediaID)
	method := cacheMethod(size.Method, animated)
	if th, err := m.db.thumbnail(ctx, source, size.Width, size.Height, method); err != nil || th != nil {
		return th, err
	}
	key := "thumbnail " + source + " " + strconv.Itoa(size.Width) + "x" + strconv.Itoa(size.Height) + " " + method
	v, err, _ := m.flights.Do(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), remoteFetchTimeout)
		defer cancel()
		if th, err := m.db.thumbnail(ctx, source, size.Width, size.Height, method); err != nil || th != nil {
			return th, err
		}
		body, contentType, _, err := m.remote().Thumbnail(ctx, origin, mediaID, size.Width, size.Height, size.Method, animated)
		if err != nil {
			return nil, m.remoteError(origin, err)
		}
		sp, err := m.spoolRemote(body, origin)
		if err != nil {
			return nil, err
		}
		row := &thumbnailRow{Width: size.Width, Height: size.Height, Method: method,
			ContentType: sanitizeContentType(contentType), Size: sp.size, SHA256: sp.sha256}
		if err := m.put(ctx, sp, func() error { return m.db.insertThumbnail(ctx, source, row, nowMS()) }); err != nil {
			return nil, err
		}
		return m.db.thumbnail(ctx, source, size.Width, size.Height, method)
	})
	if err != nil {
		return nil, err
	}
	th, _ := v.(*thumbnailRow)
	if th == nil { // purged as soon as fetched
		return nil, mxerr.NotFound("unknown media")
	}
	return th, nil
}

// remoteSource is the ma_thumbnails source of a remote thumbnail; it can
// never be mistaken for a hex SHA-256.
func remoteSource(origin, mediaID string) string { return "mxc://" + origin + "/" + mediaID }

// spoolRemote spools a remote answer, at most media.max_upload_bytes: the
// spec's 502 M_TOO_LARGE for remote content too large to proxy.
func (m *MediaAPI) spoolRemote(body io.ReadCloser, origin string) (*spooled, error) {
	defer body.Close()
	limit := m.cfg.MaxUploadBytes
	sp, err := m.spoolWith(func(w io.Writer) (int64, error) { return io.Copy(w, io.LimitReader(body, limit+1)) })
	if err != nil {
		return nil, mxerr.New(http.StatusBadGateway, "M_UNKNOWN", "could not fetch the media from %s", origin)
	}
	if sp.size > limit {
		sp.discard()
		return nil, mxerr.New(http.StatusBadGateway, "M_TOO_LARGE", "the remote media is over %d bytes", limit)
	}
	return sp, nil
}

// remoteError passes the remote server's Matrix errors on (a 5xx of its
// own as 502: the failure is not this server's) and turns any other
// failure (unreachable, refused by the allow-list...) into a 502.
func (m *MediaAPI) remoteError(origin string, err error) error {
	m.log.Info("remote media not fetched", "origin", origin, "err", err)
	if mx, ok := mxerr.As(err); ok {
		if mx.Status < 500 || mx.Status == http.StatusGatewayTimeout {
			return mx
		}
		return mxerr.New(http.StatusBadGateway, mx.Code, "%s answered: %s", origin, mx.Message)
	}
	return mxerr.New(http.StatusBadGateway, "M_UNKNOWN", "could not fetch the media from %s", origin)
}
