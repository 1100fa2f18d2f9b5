package mediaapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// thumbnail answers GET .../thumbnail/{serverName}/{mediaId}. The request
// is mapped to one of media.thumbnail_sizes, which is generated the first
// time it is asked for and kept (in the store, with a row in
// ma_thumbnails). Animated thumbnails are not made: a GIF gives its first
// frame, which the spec allows ("SHOULD" return an animated one).
func (m *MediaAPI) thumbnail(w http.ResponseWriter, req *httputil.Request) error {
	q := req.URL.Query()
	width, err1 := strconv.Atoi(q.Get("width"))
	height, err2 := strconv.Atoi(q.Get("height"))
	if err1 != nil || err2 != nil || width < 1 || height < 1 {
		return mxerr.InvalidParam("width and height must be positive integers")
	}
	method := q.Get("method")
	switch method {
	case "":
		method = "scale"
	case "scale", "crop":
	default:
		return mxerr.InvalidParam("method must be crop or scale")
	}
	if a := q.Get("animated"); a != "" && a != "true" && a != "false" {
		return mxerr.InvalidParam("animated must be true or false")
	}
	md, err := m.resolve(req)
	if err != nil {
		return err
	}
	if !canThumbnail(md.ContentType) {
		return mxerr.New(http.StatusBadRequest, "M_UNKNOWN", "cannot generate thumbnails for %s", md.ContentType)
	}
	size := pickSize(m.cfg.ThumbnailSizes, width, height, method)
	th, err := m.thumbnailFor(req.Context(), md, size)
	if err != nil {
		return err
	}
	if th == nil { // the original is no larger than asked: serve it
		return m.serveContent(w, req, md.SHA256, md.ContentType, md.UploadName)
	}
	return m.serveContent(w, req, th.SHA256, th.ContentType, "thumbnail"+extension(th.ContentType))
}

func extension(ct string) string {
	if ct == "image/jpeg" {
		return ".jpg"
	}
	return ".png"
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
// if needed; nil means the original is small enough to serve itself.
func (m *MediaAPI) thumbnailFor(ctx context.Context, md *Media, size config.ThumbnailSize) (*thumbnailRow, error) {
	cached, err := m.db.thumbnail(ctx, md.SHA256, size.Width, size.Height, size.Method)
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
	if cached, err := m.db.thumbnail(ctx, md.SHA256, size.Width, size.Height, size.Method); err != nil || cached != nil {
		return cached, err
	}
	return m.generate(ctx, md, size)
}

func (m *MediaAPI) generate(ctx context.Context, md *Media, size config.ThumbnailSize) (*thumbnailRow, error) {
	blob, err := m.store.Open(ctx, md.SHA256)
	if err != nil {
		return nil, fmt.Errorf("open %s for thumbnailing: %w", md.MediaID, err)
	}
	defer blob.Close()
	cfg, err := imageConfig(md.ContentType, blob)
	if err != nil {
		return nil, cannotThumbnail(err)
	}
	w, h, shrink := thumbSize(cfg.Width, cfg.Height, size.Width, size.Height, size.Method)
	if !shrink {
		return nil, nil
	}
	if _, err := blob.Seek(0, 0); err != nil {
		return nil, fmt.Errorf("rewind %s: %w", md.MediaID, err)
	}
	img, err := decodeBounded(md.ContentType, blob, m.cfg.MaxThumbnailPixels)
	if errors.Is(err, errTooManyPixels) {
		return nil, mxerr.TooLarge("image is too large to thumbnail (%dx%d)", cfg.Width, cfg.Height)
	}
	if err != nil {
		return nil, cannotThumbnail(err)
	}
	out := resize(img, w, h, size.Method)
	var ct string
	hashed, err := m.spoolWith(func(w io.Writer) (int64, error) {
		cw := &countingWriter{w: w}
		var err error
		ct, err = encodeThumbnail(cw, out, md.ContentType)
		return cw.n, err
	})
	if err != nil {
		return nil, fmt.Errorf("encode thumbnail: %w", err)
	}
	row := &thumbnailRow{Width: size.Width, Height: size.Height, Method: size.Method, ContentType: ct, Size: hashed.size, SHA256: hashed.sha256}
	err = m.put(ctx, hashed, func() error { return m.db.insertThumbnail(ctx, md.SHA256, row, nowMS()) })
	if err != nil {
		return nil, err
	}
	// Re-read: a concurrent generation may have recorded its own first.
	return m.db.thumbnail(ctx, md.SHA256, size.Width, size.Height, size.Method)
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
