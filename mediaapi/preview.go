package mediaapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// previewer fetches pages and images for /preview_url through safeClient.
type previewer struct {
	m       *MediaAPI
	client  *http.Client
	allowed []netip.Prefix
}

func newPreviewer(m *MediaAPI, allowed []netip.Prefix) *previewer {
	return &previewer{m: m, client: safeClient(allowed, m.cfg.URLPreview.Timeout), allowed: allowed}
}

// previewURL answers GET .../preview_url?url=. Off by default; then, like
// Synapse, 404 M_UNKNOWN "URL previews are disabled".
func (m *MediaAPI) previewURL(req *httputil.Request) (any, error) {
	if m.preview == nil {
		return nil, mxerr.New(http.StatusNotFound, "M_UNKNOWN", "URL previews are disabled")
	}
	raw := req.URL.Query().Get("url")
	if raw == "" {
		return nil, mxerr.MissingParam("missing url")
	}
	u, err := checkPreviewURL(raw, m.preview.allowed)
	if err != nil {
		return nil, err
	}
	key := u.String()
	cached, ok, err := m.db.preview(req.Context(), key, nowMS()-m.cfg.URLPreview.CacheTTL.Milliseconds())
	if err != nil {
		return nil, err
	}
	if ok {
		return json.RawMessage(cached), nil
	}
	og, err := m.preview.fetch(req.Context(), u)
	if err != nil {
		req.Log.Info("url preview failed", "url", key, "err", err)
		return nil, err
	}
	js, err := json.Marshal(og)
	if err != nil {
		return nil, fmt.Errorf("encode preview: %w", err)
	}
	if err := m.db.storePreview(req.Context(), key, string(js), nowMS()); err != nil {
		return nil, err
	}
	return json.RawMessage(js), nil
}

// checkPreviewURL accepts absolute http(s) URLs; an IP-literal host is
// checked at once (names are checked when connecting, see safeClient).
func checkPreviewURL(raw string, allowed []netip.Prefix) (*url.URL, error) {
	if len(raw) > 2048 {
		return nil, mxerr.InvalidParam("url is too long")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil {
		return nil, mxerr.InvalidParam("url must be an absolute http or https URL")
	}
	u.Fragment, u.RawFragment = "", ""
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !addressAllowed(ip, allowed) {
		return nil, blocked()
	}
	return u, nil
}

func blocked() error { return mxerr.Forbidden("URL previews may not reach this address") }

// fetch gets the URL and builds its OpenGraph object: from the page's
// head for HTML, or the image itself (stored as media) for an image.
func (p *previewer) fetch(ctx context.Context, u *url.URL) (map[string]any, error) {
	body, contentType, err := p.get(ctx, u)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	og := map[string]any{}
	switch {
	case strings.HasPrefix(contentType, "image/"):
		if err := p.attachImage(ctx, og, body, contentType); err != nil {
			return nil, err
		}
		return og, nil
	case contentType == "text/html" || contentType == "application/xhtml+xml":
		og = parseOpenGraph(body)
	default:
		return og, nil // nothing to show, but not an error
	}
	if img, ok := og["og:image"].(string); ok {
		delete(og, "og:image")
		if ref, err := u.Parse(img); err == nil && (ref.Scheme == "http" || ref.Scheme == "https") {
			if err := p.fetchImage(ctx, og, ref); err != nil {
				slogDebug(p.m, "preview image not fetched", "url", ref.String(), "err", err)
			}
		}
	}
	return og, nil
}

// get returns the body of a 2xx answer, cut at max_bytes.
func (p *previewer) get(ctx context.Context, u *url.URL) (io.ReadCloser, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", mxerr.InvalidParam("bad url: %v", err)
	}
	req.Header.Set("User-Agent", "Chappe URL preview")
	req.Header.Set("Accept", "text/html, image/*;q=0.9, */*;q=0.1")
	resp, err := p.client.Do(req)
	if err != nil {
		if errors.Is(err, errBlockedAddress) {
			return nil, "", blocked()
		}
		return nil, "", mxerr.New(http.StatusBadGateway, "M_UNKNOWN", "could not fetch the URL")
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_ = resp.Body.Close()
		return nil, "", mxerr.New(http.StatusBadGateway, "M_UNKNOWN", "the URL answered %d", resp.StatusCode)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	limited := struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, p.m.cfg.URLPreview.MaxBytes), resp.Body}
	return limited, mt, nil
}

func (p *previewer) fetchImage(ctx context.Context, og map[string]any, u *url.URL) error {
	body, contentType, err := p.get(ctx, u)
	if err != nil {
		return err
	}
	defer body.Close()
	if !strings.HasPrefix(contentType, "image/") {
		return fmt.Errorf("og:image is %s", contentType)
	}
	return p.attachImage(ctx, og, body, contentType)
}

// attachImage stores the image as local media (owned by no user) and
// points og:image at its mxc URI, as the spec asks.
func (p *previewer) attachImage(ctx context.Context, og map[string]any, r io.Reader, contentType string) error {
	m := p.m
	sp, err := m.spool(r, m.cfg.URLPreview.MaxBytes)
	if err != nil {
		return err
	}
	now := nowMS()
	md := &Media{Origin: m.serverName, MediaID: newMediaID(), ContentType: sanitizeContentType(contentType),
		Size: sp.size, SHA256: sp.sha256, CreatedMS: now, UploadedMS: now}
	if err := m.put(ctx, sp, func() error { return m.db.insertMedia(ctx, md) }); err != nil {
		return err
	}
	og["og:image"] = "mxc://" + md.Origin + "/" + md.MediaID
	og["og:image:type"] = md.ContentType
	og["matrix:image:size"] = md.Size
	if canThumbnail(md.ContentType) {
		if blob, err := m.store.Open(ctx, md.SHA256); err == nil {
			if cfg, err := imageConfig(md.ContentType, blob); err == nil {
				og["og:image:width"], og["og:image:height"] = cfg.Width, cfg.Height
			}
			_ = blob.Close()
		}
	}
	return nil
}

func slogDebug(m *MediaAPI, msg string, args ...any) { m.log.Debug(msg, args...) }
