package mediaapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/chappe-matrix/chappe/config"
)

// S3Store keeps files as objects <prefix>ab/cd/<sha256> of an
// S3-compatible bucket (the local store's layout, so a bucket can be
// filled from a local store by copying). Uploads are still spooled to a
// local temporary directory first, where they are hashed; PutFile then
// streams the file to the bucket (multipart above s3PartSize, each part
// read from the file as it is sent), and Open streams an object back
// with one plain GET, or a ranged GET from an offset for Range requests.
type S3Store struct {
	client *minio.Client
	core   minio.Core // raw GETs: the object's stream, no hidden seeks
	bucket string
	prefix string
	tmp    string
}

// s3PartSize is minio-go's smallest part: files up to it go in one PUT.
const s3PartSize = 16 << 20

// NewS3Store connects to the bucket (checked to exist, so that a wrong
// endpoint, bucket or key fails at start-up) and spools into tmpDir.
func NewS3Store(ctx context.Context, cfg config.MediaS3, tmpDir string) (*S3Store, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("endpoint: %w", err)
	}
	lookup := minio.BucketLookupDNS
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       u.Scheme == "https",
		Region:       cfg.Region,
		BucketLookup: lookup,
		MaxRetries:   3,
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if err := os.MkdirAll(tmpDir, 0o750); err != nil {
		return nil, fmt.Errorf("spool directory: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	if !ok {
		return nil, fmt.Errorf("bucket %s does not exist", cfg.Bucket)
	}
	return &S3Store{client: client, core: minio.Core{Client: client}, bucket: cfg.Bucket, prefix: cfg.Prefix, tmp: tmpDir}, nil
}

func (s *S3Store) object(key string) (string, error) {
	if !keyPattern.MatchString(key) {
		return "", fmt.Errorf("media store: invalid key %q", key)
	}
	return s.prefix + filepath.ToSlash(filepath.Join(key[0:2], key[2:4], key)), nil
}

func (s *S3Store) TempDir() string { return s.tmp }

// PutFile uploads the spooled file and removes it. An S3 PUT is atomic
// (the object appears whole or not at all) and putting the same key
// again with the same bytes is harmless.
func (s *S3Store) PutFile(ctx context.Context, key, path string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("media store: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("media store: %w", err)
	}
	_, err = s.client.PutObject(ctx, s.bucket, name, f, st.Size(), minio.PutObjectOptions{
		ContentType: "application/octet-stream", // served with the type of each media row, not this
		PartSize:    s3PartSize,
		NumThreads:  2,
	})
	if err != nil {
		return fmt.Errorf("media store: put %s: %w", key, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("media store: %w", err)
	}
	return nil
}

// Open learns the object's size with a HEAD; the content is fetched only
// when read.
func (s *S3Store) Open(ctx context.Context, key string) (Blob, error) {
	name, err := s.object(key)
	if err != nil {
		return nil, err
	}
	info, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if isS3NotFound(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("media store: stat %s: %w", key, err)
	}
	return &s3Blob{ctx: ctx, store: s, name: name, size: info.Size, mod: info.LastModified}, nil
}

// Delete removes the object; S3 deletes of missing objects succeed.
func (s *S3Store) Delete(ctx context.Context, key string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{}); err != nil && !isS3NotFound(err) {
		return fmt.Errorf("media store: delete %s: %w", key, err)
	}
	return nil
}

func isS3NotFound(err error) bool {
	if err == nil {
		return false
	}
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusNotFound || r.Code == minio.NoSuchKey
}

// s3Blob reads an object as a stream. Seeking only moves the offset; the
// next Read opens a GET from there (no Range header from offset 0), so
// http.ServeContent's size probe costs nothing and a whole download is
// one plain GET.
type s3Blob struct {
	ctx   context.Context
	store *S3Store
	name  string
	size  int64
	mod   time.Time

	off  int64
	body io.ReadCloser // open stream positioned at off; nil until read
}

func (b *s3Blob) Size() int64        { return b.size }
func (b *s3Blob) ModTime() time.Time { return b.mod }

func (b *s3Blob) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	if b.body == nil {
		opts := minio.GetObjectOptions{}
		if b.off > 0 {
			if err := opts.SetRange(b.off, 0); err != nil { // from off to the end
				return 0, err
			}
		}
		body, _, _, err := b.store.core.GetObject(b.ctx, b.store.bucket, b.name, opts)
		if err != nil {
			return 0, fmt.Errorf("media store: get %s: %w", b.name, err)
		}
		b.body = body
	}
	n, err := b.body.Read(p)
	b.off += int64(n)
	if errors.Is(err, io.EOF) && b.off < b.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *s3Blob) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = b.off + offset
	case io.SeekEnd:
		abs = b.size + offset
	default:
		return 0, errors.New("media store: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("media store: negative position")
	}
	if abs != b.off && b.body != nil {
		_ = b.body.Close()
		b.body = nil
	}
	b.off = abs
	return abs, nil
}

func (b *s3Blob) Close() error {
	if b.body == nil {
		return nil
	}
	err := b.body.Close()
	b.body = nil
	return err
}
