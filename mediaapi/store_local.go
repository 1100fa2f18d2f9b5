package mediaapi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// LocalStore keeps files under root as blobs/ab/cd/<sha256>, spreading
// them over 65536 directories so none grows huge.
type LocalStore struct {
	root string
}

var keyPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// NewLocalStore creates root (and its tmp/ and blobs/ directories).
func NewLocalStore(root string) (*LocalStore, error) {
	for _, dir := range []string{root, filepath.Join(root, "tmp"), filepath.Join(root, "blobs")} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("media store: %w", err)
		}
	}
	return &LocalStore{root: root}, nil
}

// path maps a key to its file; keys are checked so that no key can name
// a path outside the store.
func (s *LocalStore) path(key string) (string, error) {
	if !keyPattern.MatchString(key) {
		return "", fmt.Errorf("media store: invalid key %q", key)
	}
	return filepath.Join(s.root, "blobs", key[0:2], key[2:4], key), nil
}

func (s *LocalStore) TempDir() string { return filepath.Join(s.root, "tmp") }

// PutFile renames the spooled file into place. Renaming over an existing
// blob is harmless: same key, same bytes.
func (s *LocalStore) PutFile(_ context.Context, key, tmp string) error {
	dst, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return fmt.Errorf("media store: %w", err)
	}
	if err := os.Chmod(tmp, 0o640); err != nil {
		return fmt.Errorf("media store: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("media store: %w", err)
	}
	return nil
}

func (s *LocalStore) Open(_ context.Context, key string) (Blob, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("media store: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("media store: %w", err)
	}
	return &localBlob{File: f, size: st.Size(), mod: st.ModTime()}, nil
}

func (s *LocalStore) Delete(_ context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("media store: %w", err)
	}
	return nil
}

type localBlob struct {
	*os.File
	size int64
	mod  time.Time
}

func (b *localBlob) Size() int64        { return b.size }
func (b *localBlob) ModTime() time.Time { return b.mod }
