package mediaapi

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// newMediaID is 24 random characters from the spec's alphabet (URL-safe
// base64: 144 bits, unguessable, since knowing an mxc URI is enough to
// download it).
func newMediaID() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// upload answers POST /_matrix/media/v3/upload.
func (m *MediaAPI) upload(req *httputil.Request) (any, error) {
	userID := req.Device.UserID
	if err := m.checkQuota(req, userID, req.ContentLength); err != nil {
		return nil, err
	}
	sp, err := m.spool(req.Body, m.cfg.MaxUploadBytes)
	if err != nil {
		return nil, err
	}
	// Checked again with the real size: a chunked body has no length.
	if err := m.checkQuota(req, userID, sp.size); err != nil {
		sp.discard()
		return nil, err
	}
	now := nowMS()
	md := &Media{
		Origin: m.serverName, MediaID: newMediaID(), UserID: userID,
		ContentType: sanitizeContentType(req.Header.Get("Content-Type")),
		UploadName:  sanitizeFilename(req.URL.Query().Get("filename")),
		Size:        sp.size, SHA256: sp.sha256, CreatedMS: now, UploadedMS: now,
	}
	if err := m.put(req.Context(), sp, func() error { return m.db.insertMedia(req.Context(), md) }); err != nil {
		return nil, err
	}
	req.Log.Info("media uploaded", "media_id", md.MediaID, "size", md.Size, "content_type", md.ContentType)
	return map[string]string{"content_uri": "mxc://" + md.Origin + "/" + md.MediaID}, nil
}

// checkQuota refuses an upload of size more bytes that would take the
// user past media.user_quota_bytes: 403 M_FORBIDDEN, as the spec's upload
// endpoint says for quotas.
func (m *MediaAPI) checkQuota(req *httputil.Request, userID string, size int64) error {
	if m.cfg.UserQuotaBytes == 0 || size <= 0 {
		return nil
	}
	used, err := m.db.usage(req.Context(), m.serverName, userID)
	if err != nil {
		return err
	}
	if used+size > m.cfg.UserQuotaBytes {
		return mxerr.Forbidden("media quota exceeded: %d of %d bytes used", used, m.cfg.UserQuotaBytes)
	}
	return nil
}

// create answers POST /_matrix/media/v1/create: an mxc URI to fill later.
func (m *MediaAPI) create(req *httputil.Request) (any, error) {
	userID := req.Device.UserID
	now := nowMS()
	n, err := m.db.pendingCount(req.Context(), m.serverName, userID, now)
	if err != nil {
		return nil, err
	}
	if n >= m.cfg.MaxPendingUploads {
		e := mxerr.LimitExceeded(int64(time.Minute / time.Millisecond))
		e.Message = "too many pending uploads"
		return nil, e
	}
	md := &Media{
		Origin: m.serverName, MediaID: newMediaID(), UserID: userID,
		ContentType: "application/octet-stream", CreatedMS: now,
		ExpiresMS: now + m.cfg.UnusedExpiry.Milliseconds(),
	}
	if err := m.db.insertMedia(req.Context(), md); err != nil {
		return nil, err
	}
	return map[string]any{"content_uri": "mxc://" + md.Origin + "/" + md.MediaID, "unused_expires_at": md.ExpiresMS}, nil
}

// uploadToMXC answers PUT /_matrix/media/v3/upload/{serverName}/{mediaId}:
// only the creator, only once, only before the URI expires.
func (m *MediaAPI) uploadToMXC(req *httputil.Request) (any, error) {
	serverName, mediaID := req.PathValue("serverName"), req.PathValue("mediaId")
	if serverName != m.serverName || !ValidMediaID(mediaID) {
		return nil, mxerr.NotFound("unknown media ID")
	}
	md, err := m.db.media(req.Context(), serverName, mediaID)
	if err != nil {
		return nil, err
	}
	now := nowMS()
	switch {
	case md == nil:
		return nil, mxerr.NotFound("unknown media ID")
	case md.UserID != req.Device.UserID:
		return nil, mxerr.Forbidden("this mxc URI was created by another user")
	case !md.Pending():
		return nil, cannotOverwrite()
	case md.ExpiresMS <= now:
		return nil, mxerr.NotFound("this mxc URI expired before content was uploaded")
	}
	if err := m.checkQuota(req, md.UserID, req.ContentLength); err != nil {
		return nil, err
	}
	sp, err := m.spool(req.Body, m.cfg.MaxUploadBytes)
	if err != nil {
		return nil, err
	}
	if err := m.checkQuota(req, md.UserID, sp.size); err != nil {
		sp.discard()
		return nil, err
	}
	md.ContentType = sanitizeContentType(req.Header.Get("Content-Type"))
	md.UploadName = sanitizeFilename(req.URL.Query().Get("filename"))
	md.Size, md.SHA256, md.UploadedMS = sp.size, sp.sha256, nowMS()
	err = m.put(req.Context(), sp, func() error {
		filled, err := m.db.fillPending(req.Context(), md)
		if err == nil && !filled {
			err = cannotOverwrite() // a concurrent PUT won
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func cannotOverwrite() error {
	return mxerr.New(http.StatusConflict, "M_CANNOT_OVERWRITE_MEDIA", "media already uploaded")
}
