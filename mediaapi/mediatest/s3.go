package mediatest

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/chappe-matrix/chappe/config"
)

// FakeS3 starts an in-memory S3-compatible server (gofakes3) on loopback
// with one empty bucket and returns the media.s3 section that selects
// it (path-style, with a prefix). It stops when the test ends.
func FakeS3(t testing.TB) config.MediaS3 {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("media"); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	srv := httptest.NewServer(decodeChunkedParts(fake))
	t.Cleanup(srv.Close)
	return config.MediaS3{
		Endpoint: srv.URL, Bucket: "media", Region: "us-east-1",
		AccessKey: "test-access", SecretKey: "test-secret", PathStyle: true, Prefix: "chappe/",
	}
}

// decodeChunkedParts fills a gap of gofakes3: it decodes the
// aws-chunked bodies of streaming-signed PUTs (what minio-go sends over
// plain HTTP) for whole objects but not for the parts of a multipart
// upload. This decodes those before the fake sees them. Signatures are
// not checked (the fake checks none either).
func decodeChunkedParts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") &&
			r.Header.Get("X-Amz-Content-Sha256") == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" {
			n, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
			if err != nil {
				http.Error(w, "bad decoded length", http.StatusBadRequest)
				return
			}
			chunked := bufio.NewReader(r.Body)
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(unchunk(chunked, pw)) }()
			r.Body, r.ContentLength = pr, n
			r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
			r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		}
		next.ServeHTTP(w, r)
	})
}

// unchunk copies "<hex size>;chunk-signature=...\r\n<data>\r\n" chunks
// until the empty one.
func unchunk(r *bufio.Reader, w io.Writer) error {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		sizeHex, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		size, err := strconv.ParseInt(sizeHex, 16, 64)
		if err != nil {
			return fmt.Errorf("chunk size %q: %w", line, err)
		}
		if size == 0 {
			return nil
		}
		if _, err := io.CopyN(w, r, size); err != nil {
			return err
		}
		if _, err := r.Discard(2); err != nil { // CRLF
			return err
		}
	}
}
