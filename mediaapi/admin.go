package mediaapi

import (
	"net/http"
	"strconv"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// The operators' media API, on Synapse's paths so its tools work.
func (m *MediaAPI) adminRoutes(r *httputil.Router) {
	const admin = "/_synapse/admin/v1"
	r.Handle("POST "+admin+"/media/quarantine/{serverName}/{mediaId}", httputil.RequireAuth, m.quarantine(true))
	r.Handle("POST "+admin+"/media/unquarantine/{serverName}/{mediaId}", httputil.RequireAuth, m.quarantine(false))
	r.Handle("DELETE "+admin+"/users/{userId}/media", httputil.RequireAuth, m.deleteUserMedia)
	r.Handle("POST "+admin+"/purge_media_cache", httputil.RequireAuth, m.purgeMediaCache)
}

func requireAdmin(req *httputil.Request) error {
	if !req.Device.IsAdmin {
		return mxerr.Forbidden("You are not a server admin")
	}
	return nil
}

// quarantine marks a media item so that it is no longer served (404), or
// lifts the mark. The content is kept, as Synapse does, for review.
func (m *MediaAPI) quarantine(on bool) httputil.Handler {
	return func(req *httputil.Request) (any, error) {
		if err := requireAdmin(req); err != nil {
			return nil, err
		}
		serverName, mediaID := req.PathValue("serverName"), req.PathValue("mediaId")
		if !ValidMediaID(mediaID) {
			return nil, mxerr.NotFound("unknown media")
		}
		var ms int64
		if on {
			ms = nowMS()
		}
		found, err := m.db.setQuarantined(req.Context(), serverName, mediaID, ms)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, mxerr.NotFound("unknown media")
		}
		req.Log.Info("media quarantine changed", "origin", serverName, "media_id", mediaID, "quarantined", on)
		return struct{}{}, nil
	}
}

// deleteUserMedia deletes every local media item a user uploaded, with
// its content and thumbnails when nothing else shares them.
func (m *MediaAPI) deleteUserMedia(req *httputil.Request) (any, error) {
	if err := requireAdmin(req); err != nil {
		return nil, err
	}
	userID := req.PathValue("userId")
	list, err := m.db.userMedia(req.Context(), m.serverName, userID)
	if err != nil {
		return nil, err
	}
	deleted := make([]string, 0, len(list))
	for _, md := range list {
		if err := m.removeMedia(req.Context(), md); err != nil {
			return nil, err
		}
		deleted = append(deleted, md.MediaID)
	}
	req.Log.Info("user media deleted", "target", userID, "count", len(deleted))
	return map[string]any{"deleted_media": deleted, "total": len(deleted)}, nil
}

// purgeMediaCache deletes cached remote media (and remote thumbnails)
// fetched before before_ts; they are fetched again when next asked for.
func (m *MediaAPI) purgeMediaCache(req *httputil.Request) (any, error) {
	if err := requireAdmin(req); err != nil {
		return nil, err
	}
	before, err := strconv.ParseInt(req.URL.Query().Get("before_ts"), 10, 64)
	if err != nil || before < 0 {
		return nil, mxerr.New(http.StatusBadRequest, "M_MISSING_PARAM", "before_ts must be a timestamp in milliseconds")
	}
	list, err := m.db.remoteBefore(req.Context(), m.serverName, before)
	if err != nil {
		return nil, err
	}
	for _, md := range list {
		if err := m.removeMedia(req.Context(), md); err != nil {
			return nil, err
		}
	}
	// Thumbnails fetched from remote servers for media not cached whole.
	keys, err := m.db.deleteRemoteThumbnailsBefore(req.Context(), before)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		m.deleteIfUnreferenced(req.Context(), k)
	}
	req.Log.Info("remote media cache purged", "before_ts", before, "media", len(list), "thumbnails", len(keys))
	return map[string]any{"deleted": len(list)}, nil
}
