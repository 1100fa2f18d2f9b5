package mediaapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// Federation media (server-server API, "Content Repository"): other
// servers download this server's media from
// /_matrix/federation/v1/media/download/{mediaId} and /thumbnail/{mediaId}.
// The answer is multipart/mixed with exactly two parts: a JSON object of
// metadata (empty for now), then either the content (with Content-Type
// and Content-Disposition) or a Location header to fetch it from.
// The federation component routes the requests (it checks the signature)
// and calls ServeFederationDownload / ServeFederationThumbnail; its
// RemoteFetcher reads answers with ParseFederationMultipart.

// ServeFederationDownload answers another server's download of local
// media mediaID, waiting up to timeout_ms for a pending async upload.
// Only this server's own media is served (never the remote cache). It
// returns a *mxerr.Error, without writing anything, when there is nothing
// to serve.
func (m *MediaAPI) ServeFederationDownload(w http.ResponseWriter, r *http.Request, mediaID string) error {
	md, err := m.federationMedia(r, mediaID)
	if err != nil {
		return err
	}
	return m.writeFederationMultipart(w, r, md.SHA256, md.ContentType, md.UploadName)
}

// ServeFederationThumbnail answers another server's thumbnail request
// (width, height, method, animated and timeout_ms in the query, as for
// clients) for local media mediaID.
func (m *MediaAPI) ServeFederationThumbnail(w http.ResponseWriter, r *http.Request, mediaID string) error {
	p, err := parseThumbParams(r.URL.Query())
	if err != nil {
		return err
	}
	md, err := m.federationMedia(r, mediaID)
	if err != nil {
		return err
	}
	size := pickSize(m.cfg.ThumbnailSizes, p.width, p.height, p.method)
	key, ct, name, err := m.thumbnailOf(r.Context(), md, size, p.animated)
	if err != nil {
		return err
	}
	return m.writeFederationMultipart(w, r, key, ct, name)
}

func (m *MediaAPI) federationMedia(r *http.Request, mediaID string) (*Media, error) {
	if !ValidMediaID(mediaID) {
		return nil, mxerr.NotFound("unknown media")
	}
	return m.lookup(r.Context(), m.serverName, mediaID, r.URL.Query(), access{}, false)
}

// writeFederationMultipart streams stored content as the two-part answer.
func (m *MediaAPI) writeFederationMultipart(w http.ResponseWriter, r *http.Request, key, contentType, name string) error {
	blob, err := m.store.Open(r.Context(), key)
	if errors.Is(err, ErrNotFound) {
		m.log.Error("media row without stored content", "key", key)
		return mxerr.NotFound("unknown media")
	}
	if err != nil {
		return err
	}
	defer blob.Close()
	mw := multipart.NewWriter(w)
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	w.WriteHeader(http.StatusOK)
	if err := writeMetadataPart(mw); err != nil {
		return err
	}
	part, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":        {contentType},
		"Content-Disposition": {contentDisposition(contentType, name)},
	})
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, blob); err != nil {
		// The status is sent: the truncated body (no closing boundary)
		// tells the other server it failed.
		m.log.Warn("federation media cut short", "key", key, "err", err)
		return nil
	}
	return mw.Close()
}

func writeMetadataPart(mw *multipart.Writer) error {
	part, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	if err != nil {
		return err
	}
	_, err = io.WriteString(part, "{}")
	return err
}

// FederationMedia is a parsed federation media answer: the content as a
// stream, or the Location the other server redirects to.
type FederationMedia struct {
	// Metadata is the first part's JSON object ({} as of spec v1.11).
	Metadata json.RawMessage
	// ContentType and Filename describe the content (Filename from its
	// Content-Disposition; "" when none). Both are empty for a Location.
	ContentType string
	Filename    string
	// Body streams the content; closing it closes the response body. nil
	// when Location is set.
	Body io.ReadCloser
	// Location is where the media is to be fetched (a plain GET, which
	// SHOULD answer with the Content-Type and Content-Disposition), not
	// to be cached, says the spec. The caller follows it with the limits
	// it applies to any outbound request, and closes nothing more.
	Location string
}

// maxMetadataBytes bounds the JSON part, which is read into memory.
const maxMetadataBytes = 64 << 10

// ParseFederationMultipart reads the answer to a federation media
// download or thumbnail request: contentType is its Content-Type header
// and body its body, which is closed on error (and, otherwise, when
// Body is closed, or at once for a Location).
func ParseFederationMultipart(contentType string, body io.ReadCloser) (*FederationMedia, error) {
	fm, err := parseFederationMultipart(contentType, body)
	if err != nil || fm.Body == nil {
		_ = body.Close()
	}
	return fm, err
}

func parseFederationMultipart(contentType string, body io.ReadCloser) (*FederationMedia, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return nil, fmt.Errorf("federation media: Content-Type %q is not multipart/mixed with a boundary", contentType)
	}
	mr := multipart.NewReader(body, params["boundary"])
	meta, err := mr.NextPart()
	if err != nil {
		return nil, fmt.Errorf("federation media: metadata part: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(meta, maxMetadataBytes+1))
	if err != nil {
		return nil, fmt.Errorf("federation media: metadata part: %w", err)
	}
	var obj map[string]json.RawMessage
	if len(raw) > maxMetadataBytes || json.Unmarshal(raw, &obj) != nil || obj == nil {
		return nil, errors.New("federation media: the first part is not a JSON object")
	}
	fm := &FederationMedia{Metadata: raw}
	content, err := mr.NextPart()
	if err != nil {
		return nil, fmt.Errorf("federation media: content part: %w", err)
	}
	if loc := content.Header.Get("Location"); loc != "" {
		fm.Location = loc
		return fm, nil
	}
	fm.ContentType = content.Header.Get("Content-Type")
	if fm.ContentType == "" {
		fm.ContentType = "application/octet-stream"
	}
	if _, dp, err := mime.ParseMediaType(content.Header.Get("Content-Disposition")); err == nil {
		fm.Filename = dp["filename"] // filename*= is decoded into it too
	}
	fm.Body = struct {
		io.Reader
		io.Closer
	}{content, body}
	return fm, nil
}
