// Package mediaapi is the content repository: uploads (direct and
// asynchronous), authenticated downloads, thumbnails (animated ones for
// GIFs), URL previews, the remote-media cache and the operators' media
// admin API.
//
// This file is its public face. The mediaapi talks to no other component
// over the bus: it serves HTTP and owns the `ma_` tables and the file
// store. What others may rely on is below and in remote.go and
// federation.go: the shape of a media item, the Store interface (local
// directory or S3 bucket), the rules for media IDs, the RemoteFetcher the
// federation component plugs in, and the federation media handlers.
//
// Files are content-addressed: a file is stored once under the SHA-256 of
// its bytes however many media IDs point at it, and thumbnails are keyed
// by the SHA-256 of their source, so identical uploads share thumbnails
// too. The `origin` column of every media row is the server that owns the
// mxc URI: this server for uploads, another one for the remote-media
// cache.
package mediaapi

import (
	"context"
	"errors"
	"io"
	"regexp"
	"time"
)

// Media is one row of ma_media: an mxc://Origin/MediaID URI.
type Media struct {
	Origin      string
	MediaID     string
	UserID      string // uploader; "" for remote media
	ContentType string
	UploadName  string // sanitised filename, may be empty
	Size        int64
	SHA256      string // hex; "" while an async upload is pending
	CreatedMS   int64
	UploadedMS  int64 // 0 while pending
	ExpiresMS   int64 // pending uploads: when the unused mxc URI expires
	Quarantined bool
}

// Pending tells whether the mxc URI was created but has no content yet.
func (m *Media) Pending() bool { return m.UploadedMS == 0 }

// Store keeps file contents by key (the hex SHA-256 of the content). The
// local filesystem implementation is LocalStore; any implementation must
// make PutFile atomic (a reader sees the whole file or nothing) and
// idempotent (the same key may be put twice with the same bytes).
type Store interface {
	// PutFile moves the local temporary file at path into the store under
	// key. On success the file at path is gone (renamed or uploaded and
	// removed).
	PutFile(ctx context.Context, key, path string) error
	// Open returns the content for streaming, with Range support.
	Open(ctx context.Context, key string) (Blob, error)
	// Delete removes the content; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// TempDir is where uploads are spooled before PutFile: on the same
	// filesystem for the local store, so PutFile is a rename.
	TempDir() string
}

// Blob is stored content being read.
type Blob interface {
	io.ReadSeekCloser
	Size() int64
	ModTime() time.Time
}

// ErrNotFound is returned by Store.Open for a missing key.
var ErrNotFound = errors.New("media: not found in store")

// mediaIDPattern is what the spec allows in a media ID (A-Za-z0-9_-);
// anything else, percent-encoded or not, is refused before any lookup.
var mediaIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

// ValidMediaID tells whether id may be a media ID.
func ValidMediaID(id string) bool { return mediaIDPattern.MatchString(id) }
