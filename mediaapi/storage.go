package mediaapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// storage is the SQL of the ma_ tables.
type storage struct {
	db *sqlutil.DB
}

const mediaColumns = `origin, media_id, user_id, content_type, upload_name, size, sha256, created_ms, uploaded_ms, expires_ms, quarantined_ms`

func scanMedia(row interface{ Scan(...any) error }) (*Media, error) {
	var m Media
	var quarantined int64
	err := row.Scan(&m.Origin, &m.MediaID, &m.UserID, &m.ContentType, &m.UploadName, &m.Size, &m.SHA256,
		&m.CreatedMS, &m.UploadedMS, &m.ExpiresMS, &quarantined)
	if err != nil {
		return nil, err
	}
	m.Quarantined = quarantined != 0
	return &m, nil
}

// media returns the row, or nil when there is none.
func (s *storage) media(ctx context.Context, origin, mediaID string) (*Media, error) {
	m, err := scanMedia(s.db.QueryRowContext(ctx, `SELECT `+mediaColumns+` FROM ma_media WHERE origin = $1 AND media_id = $2`, origin, mediaID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read media %s/%s: %w", origin, mediaID, err)
	}
	return m, nil
}

const insertMediaSQL = `INSERT INTO ma_media (` + mediaColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0)`

func (s *storage) insertMedia(ctx context.Context, m *Media) error {
	return s.execInsertMedia(ctx, insertMediaSQL, m)
}

// insertRemoteMedia caches remote media; another process that cached it
// first wins, harmlessly (same content).
func (s *storage) insertRemoteMedia(ctx context.Context, m *Media) error {
	return s.execInsertMedia(ctx, insertMediaSQL+` ON CONFLICT (origin, media_id) DO NOTHING`, m)
}

func (s *storage) execInsertMedia(ctx context.Context, query string, m *Media) error {
	_, err := s.db.ExecContext(ctx, query,
		m.Origin, m.MediaID, m.UserID, m.ContentType, m.UploadName, m.Size, m.SHA256, m.CreatedMS, m.UploadedMS, m.ExpiresMS)
	if err != nil {
		return fmt.Errorf("insert media %s/%s: %w", m.Origin, m.MediaID, err)
	}
	return nil
}

// deleteExpiredPending deletes the mxc URIs created (async upload) but
// never filled whose expiry has passed; they have no content.
func (s *storage) deleteExpiredPending(ctx context.Context, nowMS int64) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM ma_media WHERE uploaded_ms = 0 AND expires_ms <= $1`, nowMS)
	if err != nil {
		return 0, fmt.Errorf("delete expired pending uploads: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// fillPending gives a pending async upload its content. It returns false
// when the row was filled meanwhile (by a concurrent PUT).
func (s *storage) fillPending(ctx context.Context, m *Media) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE ma_media SET content_type = $3, upload_name = $4, size = $5, sha256 = $6, uploaded_ms = $7
		WHERE origin = $1 AND media_id = $2 AND uploaded_ms = 0`,
		m.Origin, m.MediaID, m.ContentType, m.UploadName, m.Size, m.SHA256, m.UploadedMS)
	if err != nil {
		return false, fmt.Errorf("fill media %s: %w", m.MediaID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("fill media %s: %w", m.MediaID, err)
	}
	return n == 1, nil
}

// usage is what the user stores (uploaded bytes, counted per upload even
// when deduplicated: the quota is about what they sent).
func (s *storage) usage(ctx context.Context, origin, userID string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(size), 0) FROM ma_media WHERE user_id = $1 AND origin = $2`, userID, origin).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("media usage of %s: %w", userID, err)
	}
	return n, nil
}

// pendingCount counts the user's unexpired, unfilled mxc URIs.
func (s *storage) pendingCount(ctx context.Context, origin, userID string, nowMS int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM ma_media WHERE user_id = $1 AND origin = $2 AND uploaded_ms = 0 AND expires_ms > $3`,
		userID, origin, nowMS).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("pending uploads of %s: %w", userID, err)
	}
	return n, nil
}

func (s *storage) setQuarantined(ctx context.Context, origin, mediaID string, ms int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE ma_media SET quarantined_ms = $3 WHERE origin = $1 AND media_id = $2`, origin, mediaID, ms)
	if err != nil {
		return false, fmt.Errorf("quarantine %s: %w", mediaID, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// userMedia lists the IDs and hashes of a user's local media.
func (s *storage) userMedia(ctx context.Context, origin, userID string) ([]*Media, error) {
	return s.list(ctx, `SELECT `+mediaColumns+` FROM ma_media WHERE user_id = $1 AND origin = $2`, userID, origin)
}

// remoteBefore lists cached remote media (origin not this server) last
// fetched before ms.
func (s *storage) remoteBefore(ctx context.Context, localOrigin string, ms int64) ([]*Media, error) {
	return s.list(ctx, `SELECT `+mediaColumns+` FROM ma_media WHERE origin <> $1 AND created_ms < $2`, localOrigin, ms)
}

// deleteRemoteThumbnailsBefore deletes the thumbnails fetched from
// remote servers (source "mxc://...") before ms and returns their
// content keys.
func (s *storage) deleteRemoteThumbnailsBefore(ctx context.Context, ms int64) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `DELETE FROM ma_thumbnails WHERE source_sha256 LIKE 'mxc://%' AND created_ms < $1 RETURNING sha256`, ms)
	if err != nil {
		return nil, fmt.Errorf("delete remote thumbnails: %w", err)
	}
	return scanStrings(rows)
}

func (s *storage) list(ctx context.Context, query string, args ...any) ([]*Media, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list media: %w", err)
	}
	defer rows.Close()
	var out []*Media
	for rows.Next() {
		m, err := scanMedia(rows)
		if err != nil {
			return nil, fmt.Errorf("list media: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (s *storage) deleteMedia(ctx context.Context, origin, mediaID string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM ma_media WHERE origin = $1 AND media_id = $2`, origin, mediaID); err != nil {
		return fmt.Errorf("delete media %s: %w", mediaID, err)
	}
	return nil
}

// contentReferenced tells whether any media row or thumbnail still uses
// the stored content key.
func (s *storage) contentReferenced(ctx context.Context, key string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM ma_media WHERE sha256 = $1) + (SELECT COUNT(*) FROM ma_thumbnails WHERE sha256 = $1)`, key).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("references to %s: %w", key, err)
	}
	return n > 0, nil
}

// thumbnailKeys lists the thumbnail keys of a source, to delete them with it.
func (s *storage) thumbnailKeys(ctx context.Context, source string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT sha256 FROM ma_thumbnails WHERE source_sha256 = $1`, source)
	if err != nil {
		return nil, fmt.Errorf("thumbnails of %s: %w", source, err)
	}
	return scanStrings(rows)
}

func scanStrings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func (s *storage) deleteThumbnails(ctx context.Context, source string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM ma_thumbnails WHERE source_sha256 = $1`, source); err != nil {
		return fmt.Errorf("delete thumbnails of %s: %w", source, err)
	}
	return nil
}

type thumbnailRow struct {
	Width, Height int
	Method        string
	ContentType   string
	Size          int64
	SHA256        string
}

func (s *storage) thumbnail(ctx context.Context, source string, w, h int, method string) (*thumbnailRow, error) {
	t := thumbnailRow{Width: w, Height: h, Method: method}
	err := s.db.QueryRowContext(ctx, `SELECT content_type, size, sha256 FROM ma_thumbnails
		WHERE source_sha256 = $1 AND width = $2 AND height = $3 AND method = $4`, source, w, h, method).
		Scan(&t.ContentType, &t.Size, &t.SHA256)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read thumbnail: %w", err)
	}
	return &t, nil
}

// insertThumbnail records a generated thumbnail; a concurrent request
// that generated the same one first wins, harmlessly.
func (s *storage) insertThumbnail(ctx context.Context, source string, t *thumbnailRow, nowMS int64) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO ma_thumbnails (source_sha256, width, height, method, content_type, size, sha256, created_ms)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (source_sha256, width, height, method) DO NOTHING`,
		source, t.Width, t.Height, t.Method, t.ContentType, t.Size, t.SHA256, nowMS)
	if err != nil {
		return fmt.Errorf("insert thumbnail: %w", err)
	}
	return nil
}

func (s *storage) preview(ctx context.Context, url string, notBeforeMS int64) (string, bool, error) {
	var js string
	err := s.db.QueryRowContext(ctx, `SELECT og_json FROM ma_url_previews WHERE url = $1 AND fetched_ms >= $2`, url, notBeforeMS).Scan(&js)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read preview: %w", err)
	}
	return js, true, nil
}

func (s *storage) storePreview(ctx context.Context, url, js string, nowMS int64) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO ma_url_previews (url, fetched_ms, og_json) VALUES ($1, $2, $3)
		ON CONFLICT (url) DO UPDATE SET fetched_ms = excluded.fetched_ms, og_json = excluded.og_json`, url, nowMS, js)
	if err != nil {
		return fmt.Errorf("store preview: %w", err)
	}
	return nil
}

// sourceUsed tells whether any media row still has the content.
func (s *storage) sourceUsed(ctx context.Context, key string) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM ma_media WHERE sha256 = $1`, key).Scan(&n); err != nil {
		return false, fmt.Errorf("references to %s: %w", key, err)
	}
	return n > 0, nil
}
