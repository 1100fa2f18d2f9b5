package mediaapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/mediaapi/mediatest"
)

// fakeFetcher serves remote media from a map, counting fetches; release,
// when set, holds every fetch until it is closed.
type fakeFetcher struct {
	mu        sync.Mutex
	media     map[string][]byte // "server/id"
	downloads atomic.Int32
	thumbs    atomic.Int32
	lastThumb string
	release   chan struct{}
	err       error
}

func (f *fakeFetcher) Download(ctx context.Context, server, mediaID string) (io.ReadCloser, string, string, error) {
	f.downloads.Add(1)
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, "", "", ctx.Err()
		}
	}
	if f.err != nil {
		return nil, "", "", f.err
	}
	f.mu.Lock()
	data, ok := f.media[server+"/"+mediaID]
	f.mu.Unlock()
	if !ok {
		return nil, "", "", mxerr.NotFound("no such media on %s", server)
	}
	return io.NopCloser(bytes.NewReader(data)), "image/png", "photo été.png", nil
}

func (f *fakeFetcher) Thumbnail(_ context.Context, server, mediaID string, w, h int, method string, animated bool) (io.ReadCloser, string, string, error) {
	f.thumbs.Add(1)
	f.mu.Lock()
	f.lastThumb = fmt.Sprintf("%s/%s %dx%d %s %v", server, mediaID, w, h, method, animated)
	_, ok := f.media[server+"/"+mediaID]
	f.mu.Unlock()
	if !ok {
		return nil, "", "", mxerr.NotFound("no such media")
	}
	var b bytes.Buffer
	if err := png.Encode(&b, mediatest.Gradient(w, h)); err != nil {
		return nil, "", "", err
	}
	return io.NopCloser(&b), "image/png", "", nil
}

const remoteServer = "remote.test"

func TestRemoteMediaFetchedOnceAndCached(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, "local.test", nil)
		png := mediatest.Encode(t, "image/png", mediatest.Gradient(300, 200))
		f := &fakeFetcher{media: map[string][]byte{remoteServer + "/abc": png}, release: make(chan struct{})}
		path := "/_matrix/client/v1/media/download/" + remoteServer + "/abc"

		// No fetcher yet: remote media is unknown, as before federation.
		if resp, body := h.get(path, aliceToken); resp.StatusCode != 404 || !bytes.Contains(body, []byte("M_NOT_FOUND")) {
			t.Fatalf("without a fetcher: %d %s", resp.StatusCode, body)
		}
		h.api.SetRemoteFetcher(f)

		// Eight clients at once: one fetch, eight answers.
		var wg sync.WaitGroup
		results := make([][]byte, 8)
		for i := range results {
			wg.Go(func() {
				data, err := h.alice.DownloadBytes(ctxT(t), id.ContentURI{Homeserver: remoteServer, FileID: "abc"})
				if err != nil {
					t.Errorf("download %d: %v", i, err)
				}
				results[i] = data
			})
		}
		close(f.release)
		wg.Wait()
		for i, r := range results {
			if !bytes.Equal(r, png) {
				t.Errorf("download %d: %d bytes", i, len(r))
			}
		}
		if n := f.downloads.Load(); n != 1 {
			t.Fatalf("%d fetches, want 1", n)
		}
		// Served from the cache after, with the remote's name and type.
		resp, body := h.get(path, aliceToken)
		if resp.StatusCode != 200 || !bytes.Equal(body, png) || f.downloads.Load() != 1 {
			t.Fatalf("cached: %d, %d fetches", resp.StatusCode, f.downloads.Load())
		}
		if ct, cd := resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"); ct != "image/png" || cd != `inline; filename*=utf-8''photo%20%C3%A9t%C3%A9.png` {
			t.Errorf("headers: %q %q", ct, cd)
		}
		md, err := h.api.db.media(ctxT(t), remoteServer, "abc")
		if err != nil || md == nil || md.UserID != "" {
			t.Fatalf("cache row: %+v %v", md, err)
		}
		// Thumbnails of cached media are made here, not fetched.
		resp, body = h.get("/_matrix/client/v1/media/thumbnail/"+remoteServer+"/abc?width=96&height=96&method=crop", aliceToken)
		if resp.StatusCode != 200 || f.thumbs.Load() != 0 {
			t.Fatalf("thumbnail of cached media: %d %s, %d remote thumbnails", resp.StatusCode, body, f.thumbs.Load())
		}

		// An admin purge of the cache up to now deletes it; the next
		// download fetches again.
		blobsBefore := countBlobs(t, h)
		resp, body = h.postAdmin("/_synapse/admin/v1/purge_media_cache?before_ts=" + strconv.FormatInt(nowMS()+1, 10))
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"deleted":1`)) {
			t.Fatalf("purge: %d %s", resp.StatusCode, body)
		}
		if after := countBlobs(t, h); after >= blobsBefore {
			t.Errorf("purge left the files: %d then %d", blobsBefore, after)
		}
		if md, _ := h.api.db.media(ctxT(t), remoteServer, "abc"); md != nil {
			t.Fatal("purged media still cached")
		}
		if _, body := h.get(path, aliceToken); !bytes.Equal(body, png) || f.downloads.Load() != 2 {
			t.Fatalf("after purge: %d fetches", f.downloads.Load())
		}
	})
}

func TestRemoteThumbnailFetchedAndCached(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, "local.test", nil)
		f := &fakeFetcher{media: map[string][]byte{remoteServer + "/pic": {1}}}
		h.api.SetRemoteFetcher(f)
		path := "/_matrix/client/v1/media/thumbnail/" + remoteServer + "/pic?width=300&height=200&method=scale"
		for range 2 {
			resp, body := h.get(path, aliceToken)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			cfg, _, err := image.DecodeConfig(bytes.NewReader(body))
			if err != nil || cfg.Width != 320 || cfg.Height != 240 {
				t.Fatalf("thumbnail %dx%d %v", cfg.Width, cfg.Height, err)
			}
		}
		// Asked once, for the configured size the request maps to.
		if n := f.thumbs.Load(); n != 1 || f.lastThumb != remoteServer+"/pic 320x240 scale false" {
			t.Fatalf("%d remote thumbnails, last %q", n, f.lastThumb)
		}
		// The animated one is another entry.
		if resp, _ := h.get(path+"&animated=true", aliceToken); resp.StatusCode != 200 || f.thumbs.Load() != 2 {
			t.Fatalf("animated: %d, %d remote thumbnails", resp.StatusCode, f.thumbs.Load())
		}
		if f.downloads.Load() != 0 {
			t.Fatal("a thumbnail request downloaded the original")
		}
		// Purged with the cache.
		blobs := countBlobs(t, h)
		if resp, body := h.postAdmin("/_synapse/admin/v1/purge_media_cache?before_ts=" + strconv.FormatInt(nowMS()+1, 10)); resp.StatusCode != 200 {
			t.Fatalf("purge: %d %s", resp.StatusCode, body)
		}
		if after := countBlobs(t, h); blobs == 0 || after != 0 { // both share one file (same bytes)
			t.Errorf("purge: %d files, then %d", blobs, after)
		}
		if resp, _ := h.get(path, aliceToken); resp.StatusCode != 200 || f.thumbs.Load() != 3 {
			t.Fatalf("after purge: %d, %d remote thumbnails", resp.StatusCode, f.thumbs.Load())
		}
	})
}

func TestRemoteMediaErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, "local.test", func(c *config.Config) {
			c.Media.MaxUploadBytes = 1000
			c.Media.LegacyUnauthenticated = true
		})
		f := &fakeFetcher{media: map[string][]byte{remoteServer + "/big": make([]byte, 1001)}}
		h.api.SetRemoteFetcher(f)
		cases := []struct {
			path       string
			status     int
			code       string
			setErr     error
			wantFetchs int32
		}{
			{"/_matrix/client/v1/media/download/" + remoteServer + "/nope", 404, "M_NOT_FOUND", nil, 1},
			{"/_matrix/client/v1/media/download/" + remoteServer + "/big", 502, "M_TOO_LARGE", nil, 2},
			{"/_matrix/client/v1/media/download/" + remoteServer + "/down", 502, "M_UNKNOWN", errors.New("connection refused"), 3},
			{"/_matrix/client/v1/media/download/" + remoteServer + "/busy", 502, "M_UNKNOWN", mxerr.New(500, "M_UNKNOWN", "oops"), 4},
			{"/_matrix/client/v1/media/download/" + remoteServer + "/late", 504, "M_NOT_YET_UPLOADED", mxerr.New(504, "M_NOT_YET_UPLOADED", "wait"), 5},
			// allow_remote=false on the legacy endpoint keeps to the cache.
			{"/_matrix/media/v3/download/" + remoteServer + "/big?allow_remote=false", 404, "M_NOT_FOUND", nil, 5},
			// Not a server name: refused before any fetch.
			{"/_matrix/client/v1/media/download/bad%20name/abc", 404, "M_NOT_FOUND", nil, 5},
		}
		for _, c := range cases {
			f.err = c.setErr
			resp, body := h.get(c.path, aliceToken)
			if resp.StatusCode != c.status || !bytes.Contains(body, []byte(`"`+c.code+`"`)) {
				t.Errorf("%s: %d %s, want %d %s", c.path, resp.StatusCode, body, c.status, c.code)
			}
			if n := f.downloads.Load(); n != c.wantFetchs {
				t.Errorf("%s: %d fetches so far, want %d", c.path, n, c.wantFetchs)
			}
		}
		if n := countBlobs(t, h); n != 0 {
			t.Errorf("%d files stored from failed fetches", n)
		}
	})
}

func (h *harness) postAdmin(path string) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+path, bytes.NewReader([]byte("{}")))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}
