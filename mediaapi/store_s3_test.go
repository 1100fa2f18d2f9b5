package mediaapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/chappe-matrix/chappe/mediaapi/mediatest"
)

func newS3Store(t testing.TB) *S3Store {
	t.Helper()
	s, err := NewS3Store(context.Background(), mediatest.FakeS3(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// spoolFile writes data into the store's temporary directory, as an
// upload is, and returns its key and path.
func spoolFile(t testing.TB, s Store, data []byte) (string, string) {
	t.Helper()
	sum := sha256.Sum256(data)
	path := filepath.Join(s.TempDir(), "upload-test")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(sum[:]), path
}

func TestS3Store(t *testing.T) {
	ctx := context.Background()
	s := newS3Store(t)
	// One small object (one PUT) and one over the part size (multipart).
	for _, size := range []int{1000, s3PartSize + 12345} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		key, path := spoolFile(t, s, data)
		if err := s.PutFile(ctx, key, path); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("spooled file left behind: %v", err)
		}
		blob, err := s.Open(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if blob.Size() != int64(size) || blob.ModTime().IsZero() {
			t.Errorf("size %d, mod %v", blob.Size(), blob.ModTime())
		}
		got, err := io.ReadAll(blob)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes: %v", len(got), err)
		}
		// Seek as http.ServeContent does for a Range request.
		if end, _ := blob.Seek(0, io.SeekEnd); end != int64(size) {
			t.Errorf("seek end: %d", end)
		}
		if _, err := blob.Seek(int64(size-100), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		tail := make([]byte, 50)
		if _, err := io.ReadFull(blob, tail); err != nil || !bytes.Equal(tail, data[size-100:size-50]) {
			t.Fatalf("ranged read: %v", err)
		}
		_ = blob.Close()
		// Putting the same content again is harmless.
		key2, path2 := spoolFile(t, s, data)
		if err := s.PutFile(ctx, key2, path2); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Open(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted: %v", err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("deleting twice: %v", err)
		}
	}
	if _, err := s.Open(ctx, "../../etc/passwd"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("a bad key was looked up: %v", err)
	}
}

func TestS3StoreRefusesAMissingBucket(t *testing.T) {
	cfg := mediatest.FakeS3(t)
	cfg.Bucket = "nope"
	if _, err := NewS3Store(context.Background(), cfg, t.TempDir()); err == nil {
		t.Fatal("started on a missing bucket")
	}
}

// BenchmarkS3Store: put then read back 32 MiB through the in-memory fake
// (the client's work plus the fake's, on loopback).
func BenchmarkS3Store(b *testing.B) {
	ctx := context.Background()
	s := newS3Store(b)
	data := make([]byte, 32<<20)
	_, _ = rand.Read(data)
	b.SetBytes(int64(2 * len(data)))
	for b.Loop() {
		key, path := spoolFile(b, s, data)
		if err := s.PutFile(ctx, key, path); err != nil {
			b.Fatal(err)
		}
		blob, err := s.Open(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, blob); err != nil || n != int64(len(data)) {
			b.Fatal(n, err)
		}
		_ = blob.Close()
		if err := s.Delete(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}
