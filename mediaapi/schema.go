package mediaapi

import "github.com/chappe-matrix/chappe/internal/sqlutil"

// Tables (prefix ma_, written only by this component):
//   - ma_media: one row per mxc URI (local uploads, pending async uploads,
//     and the remote-media cache: origin is then another server).
//   - ma_thumbnails: generated thumbnails, keyed by the SHA-256 of their
//     source so that identical uploads share them. Animated ones have the
//     method "crop+animated" or "scale+animated"; a row whose sha256 is
//     its source's means the original is served as the thumbnail; a
//     source "mxc://server/id" is a thumbnail fetched from a remote server
//     for media not cached whole.
//   - ma_url_previews: fetched previews, reused for media.url_preview.cache_ttl.
var migrations = []sqlutil.Migration{
	{Version: 1, SQL: `
CREATE TABLE IF NOT EXISTS ma_media (
	origin TEXT NOT NULL,
	media_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	content_type TEXT NOT NULL,
	upload_name TEXT NOT NULL,
	size BIGINT NOT NULL,
	sha256 TEXT NOT NULL,
	created_ms BIGINT NOT NULL,
	uploaded_ms BIGINT NOT NULL,
	expires_ms BIGINT NOT NULL,
	quarantined_ms BIGINT NOT NULL,
	PRIMARY KEY (origin, media_id)
);
CREATE INDEX IF NOT EXISTS ma_media_user ON ma_media (user_id, origin);
CREATE INDEX IF NOT EXISTS ma_media_sha256 ON ma_media (sha256);
CREATE TABLE IF NOT EXISTS ma_thumbnails (
	source_sha256 TEXT NOT NULL,
	width BIGINT NOT NULL,
	height BIGINT NOT NULL,
	method TEXT NOT NULL,
	content_type TEXT NOT NULL,
	size BIGINT NOT NULL,
	sha256 TEXT NOT NULL,
	created_ms BIGINT NOT NULL,
	PRIMARY KEY (source_sha256, width, height, method)
);
CREATE INDEX IF NOT EXISTS ma_thumbnails_sha256 ON ma_thumbnails (sha256);
CREATE TABLE IF NOT EXISTS ma_url_previews (
	url TEXT NOT NULL PRIMARY KEY,
	fetched_ms BIGINT NOT NULL,
	og_json TEXT NOT NULL
)`},
}
