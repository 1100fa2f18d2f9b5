package mediaapi

import (
	"context"
	"errors"
	"fmt"
	"image/gif"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// thumbParams is a thumbnail request.
type thumbParams struct {
	width, height int
	method        string
	animated      bool
}

func parseThumbParams(q url.Values) (thumbParams, error) {
	var p thumbParams
	var err1, err2 error
	p.width, err1 = strconv.Atoi(q.Get("width"))
	p.height, err2 = strconv.Atoi(q.Get("height"))
	if err1 != nil || err2 != nil || p.width < 1 || p.height < 1 {
		return p, mxerr.InvalidParam("width and height must be positive integers")
	}
	p.method = q.Get("method")
	switch p.method {
	case "":
		p.method = "scale"
	case "scale", "crop":
	default:
		return p, mxerr.InvalidParam("method must be crop or scale")
	}
	switch q.Get("animated") {
	case "true":
		p.animated = true
	case "", "false":
	default:
		return p, mxerr.InvalidParam("animated must be true or false")
	}
	return p, nil
}

// thumbnail answers GET .../thumbnail/{serverName}/{mediaId}. The request
// is mapped to one of media.thumbnail_sizes, which is generated the first
// time it is asked for and kept (in the store, with a row in
// ma_thumbnails). With animated=true an animated GIF gets an animated
// thumbnail (animated.go); without it, no animated image is ever served.
func (m *MediaAPI) thumbnail(legacy bool) httputil.RawHandler {
	return func(w http.ResponseWriter, req *httputil.Request) error {
		p, err := parseThumbParams(req.URL.Query())
		if err != nil {
			return err
		}
		origin, mediaID, err := mediaRef(req)
		if err != nil {
			return err
		}
		acc, err := m.access(req, legacy)
		if err != nil {
			return err
		}
		size := pickSize(m.cfg.ThumbnailSizes, p.width, p.height, p.method)
		md, err := m.lookup(req.Context(), origin, mediaID, req.URL.Query(), acc, false)
		if err != nil {
			return err
		}
		if md == nil { // remote, not cached: the remote server's thumbnail
			th, err := m.remoteThumbnail(req.Context(), origin, mediaID, size, p.animated)
			if err != nil {
				return err
			}
			return m.serveContent(w, req, th.SHA256, th.ContentType, "thumbnail"+extension(th.ContentType))
		}
		key, ct, name, err := m.thumbnailOf(req.Context(), md, size, p.animated)
		if err != nil {
			return err
		}
		return m.serveContent(w, req, key, ct, name)
	}
}

// thumbnailOf returns the content key, type and name to serve as md's
// thumbnail at size (the original itself when it is small enough).
func (m *MediaAPI) thumbnailOf(ctx context.Context, md *Media, size config.ThumbnailSize, animated bool) (key, contentType, name string, err error) {
	if !canThumbnail(md.ContentType) {
		return "", "", "", mxerr.New(http.StatusBadRequest, "M_UNKNOWN", "cannot generate thumbnails for %s", md.ContentType)
	}
	th, err := m.thumbnailFor(ctx, md, size, animated)
	if err != nil {
		return "", "", "", err
	}
	if th == nil { // the media was deleted meanwhile
		return "", "", "", mxerr.NotFound("unknown media")
	}
	if th.SHA256 == md.SHA256 { // the original is no larger than asked
		return md.SHA256, md.ContentType, md.UploadName, nil
	}
	return th.SHA256, th.ContentType, "thumbnail" + extension(th.ContentType), nil
}

func extension(ct string) string {
	switch ct {
	case "image/jpeg":
		return ".jpg"
	case "image/gif":
		return ".gif"
	}
	return ".png"
}

// cacheMethod is the ma_thumbnails method of a thumbnail: animated ones
// are kept apart from static ones of the same size ("scale+animated").
func cacheMethod(method string, animated bool) string {
	if animated {
		return method + "+animated"
	}
	return method
}

// pickSize is the smallest configured size of the method at least as
// large as asked (never smaller, says the spec), else the largest one;
// with no size of that method configured, the request itself.
func pickSize(sizes []config.ThumbnailSize, w, h int, method string) config.ThumbnailSize {
	var best, largest *config.ThumbnailSize
	for i := range sizes {
		s := &sizes[i]
		if s.Method != method {
			continue
		}
		if largest == nil || s.Width*s.Height > largest.Width*largest.Height {
			largest = s
		}
		if s.Width >= w && s.Height >= h && (best == nil || s.Width*s.Height < best.Width*best.Height) {
			best = s
		}
	}
	switch {
	case best != nil:
		return *best
	case largest != nil:
		return *largest
	}
	return config.ThumbnailSize{Width: min(w, 4096), Height: min(h, 4096), Method: method}
}

// thumbnailFor returns the cached thumbnail of md at size, generating it
// if needed. A row whose SHA256 is md's stands for the original itself.
func (m *MediaAPI) thumbnailFor(ctx context.Context, md *Media, size config.ThumbnailSize, animated bool) (*thumbnailRow, error) {
	method := cacheMethod(size.Method, animated)
	cached, err := m.db.thumbnail(ctx, md.SHA256, size.Width, size.Height, method)
	if err != nil || cached != nil {
		return cached, err
	}
	select {
	case m.thumbSem <- struct{}{}:
		defer func() { <-m.thumbSem }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Another request may have made it while this one queued.
	if cached, err := m.db.thumbnail(ctx, md.SHA256, size.Width, size.Height, method); err != nil || cached != nil {
		return cached, err
	}
	row, sp, err := m.generate(ctx, md, size, animated)
	if err != nil {
		return nil, err
	}
	row.Width, row.Height, row.Method = size.Width, size.Height, method
	record := func() error { return m.db.insertThumbnail(ctx, md.SHA256, row, nowMS()) }
	if sp != nil {
		err = m.put(ctx, sp, record)
	} else { // the original: stored already, and referenced by md
		err = record()
	}
	if err != nil {
		return nil, err
	}
	// Re-read: a concurrent generation may have recorded its own first.
	return m.db.thumbnail(ctx, md.SHA256, size.Width, size.Height, method)
}

// generate makes md's thumbnail at size, spooled for put (sp is nil when
// the original is its own thumbnail: small sources are, unless they are
// animated and a static thumbnail was asked for).
func (m *MediaAPI) generate(ctx context.Context, md *Media, size config.ThumbnailSize, animated bool) (row *thumbnailRow, sp *spooled, err error) {
	blob, err := m.store.Open(ctx, md.SHA256)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s for thumbnailing: %w", md.MediaID, err)
	}
	defer blob.Close()
	cfg, err := imageConfig(md.ContentType, blob)
	if err != nil {
		return nil, nil, cannotThumbnail(err)
	}
	w, h, shrink := thumbSize(cfg.Width, cfg.Height, size.Width, size.Height, size.Method)
	if err := rewind(blob); err != nil {
		return nil, nil, err
	}
	moving, err := isAnimated(md.ContentType, blob)
	if err != nil {
		return nil, nil, cannotThumbnail(err)
	}
	if !shrink && (animated || !moving) {
		return &thumbnailRow{ContentType: md.ContentType, Size: md.Size, SHA256: md.SHA256}, nil, nil
	}
	if !shrink { // a still of the first frame, at the original size
		w, h = cfg.Width, cfg.Height
	}
	if err := rewind(blob); err != nil {
		return nil, nil, err
	}
	if animated && moving && md.ContentType == "image/gif" {
		row, sp, err := m.animatedThumbnail(blob, w, h, size.Method)
		if !errors.Is(err, errTooManyPixels) {
			return row, sp, err
		}
		// Too many frames for the budget: a still, as for any image that
		// cannot be animated.
		if err := rewind(blob); err != nil {
			return nil, nil, err
		}
	}
	img, err := decodeBounded(md.ContentType, blob, m.cfg.MaxThumbnailPixels)
	if errors.Is(err, errTooManyPixels) {
		return nil, nil, mxerr.TooLarge("image is too large to thumbnail (%dx%d)", cfg.Width, cfg.Height)
	}
	if err != nil {
		return nil, nil, cannotThumbnail(err)
	}
	out := resize(img, w, h, size.Method)
	return m.spoolThumbnail(func(w io.Writer) (string, error) { return encodeThumbnail(w, out, md.ContentType) })
}

func rewind(blob Blob) error {
	if _, err := blob.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind media: %w", err)
	}
	return nil
}

// animatedThumbnail decodes every frame (within max_thumbnail_pixels for
// frames x screen) and encodes the resized animation as a GIF.
func (m *MediaAPI) animatedThumbnail(blob Blob, w, h int, method string) (*thumbnailRow, *spooled, error) {
	g, err := decodeGIFBounded(blob, m.cfg.MaxThumbnailPixels)
	if err != nil {
		if errors.Is(err, errTooManyPixels) {
			return nil, nil, err
		}
		return nil, nil, cannotThumbnail(err)
	}
	out := resizeGIF(g, w, h, method)
	return m.spoolThumbnail(func(w io.Writer) (string, error) { return "image/gif", gif.EncodeAll(w, out) })
}

// spoolThumbnail spools an encoded thumbnail for put.
func (m *MediaAPI) spoolThumbnail(encode func(io.Writer) (string, error)) (*thumbnailRow, *spooled, error) {
	var ct string
	sp, err := m.spoolWith(func(w io.Writer) (int64, error) {
		cw := &countingWriter{w: w}
		var err error
		ct, err = encode(cw)
		return cw.n, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("encode thumbnail: %w", err)
	}
	return &thumbnailRow{ContentType: ct, Size: sp.size, SHA256: sp.sha256}, sp, nil
}

// cannotThumbnail: a broken or truncated image is the client's problem,
// a 400 the spec describes, never a 500.
func cannotThumbnail(err error) error {
	return mxerr.New(http.StatusBadRequest, "M_UNKNOWN", "cannot generate a thumbnail: %v", err)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
