package tests

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// patternReader yields n bytes of a repeating pattern without holding
// them: the test itself must not be what uses the memory.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(b)), p.left)
	for i := range b[:n] {
		b[i] = byte(i*7 + int(p.left))
	}
	p.left -= n
	return int(n), nil
}

// heapPeak samples the live heap while fn runs and returns the largest
// growth over the starting heap.
func heapPeak(fn func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var s runtime.MemStats
			runtime.ReadMemStats(&s)
			if s.HeapAlloc > base && s.HeapAlloc-base > peak.Load() {
				peak.Store(s.HeapAlloc - base)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return peak.Load()
}

// A 100 MB upload and download go through the server without the heap
// growing with the file: bodies are streamed to disk and back.
func TestMediaStreamsLargeFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB transfer")
	}
	const size = 100 << 20
	srv := testserver.New(t, func(c *config.Config) { c.Media.MaxUploadBytes = 200 << 20 })
	alice := srv.RegisterUser(t, "alice")
	ctx := ctxT(t)
	var up *mautrix.RespMediaUpload
	upPeak := heapPeak(func() {
		var err error
		up, err = alice.UploadMedia(ctx, mautrix.ReqUploadMedia{Content: &patternReader{left: size}, ContentLength: size, ContentType: "application/octet-stream"})
		if err != nil {
			t.Fatal(err)
		}
	})
	var got int64
	downPeak := heapPeak(func() {
		resp, err := alice.Download(ctx, up.ContentURI)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err = io.Copy(io.Discard, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
	})
	if got != size {
		t.Fatalf("downloaded %d bytes", got)
	}
	t.Logf("100 MB: peak heap growth %.1f MB during upload, %.1f MB during download", float64(upPeak)/(1<<20), float64(downPeak)/(1<<20))
	// Not a timing: a memory bound, with a wide margin over buffers.
	if upPeak > 32<<20 || downPeak > 32<<20 {
		t.Fatalf("heap grew by %d / %d bytes for a %d-byte file: not streaming", upPeak, downPeak, size)
	}
}

// BenchmarkMediaThroughput uploads and downloads 16 MB per iteration.
func BenchmarkMediaThroughput(b *testing.B) {
	const size = 16 << 20
	srv := testserver.New(b)
	alice := srv.RegisterUser(b, "alice")
	ctx := b.Context()
	for _, dir := range []string{"upload", "download"} {
		b.Run(dir, func(b *testing.B) {
			b.SetBytes(size)
			up, err := alice.UploadMedia(ctx, mautrix.ReqUploadMedia{Content: &patternReader{left: size}, ContentLength: size, ContentType: "application/octet-stream"})
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; b.Loop(); i++ {
				if dir == "upload" {
					// Distinct content each time, so deduplication does not skip the write.
					r := io.MultiReader(&patternReader{left: size - 8}, newCounter(i))
					if _, err := alice.UploadMedia(ctx, mautrix.ReqUploadMedia{Content: r, ContentLength: size, ContentType: "application/octet-stream"}); err != nil {
						b.Fatal(err)
					}
					continue
				}
				resp, err := alice.Download(ctx, up.ContentURI)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}

// newCounter is 8 bytes that differ per iteration.
func newCounter(i int) io.Reader { return strings.NewReader(fmt.Sprintf("%08d", i%100000000)) }
