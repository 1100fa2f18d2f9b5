package tests

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

func TestMediaUploadDownloadRoundTrip(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	data := []byte("bonjour, le monde")
	up := must[*mautrix.RespMediaUpload](t)(alice.UploadBytesWithName(ctx, data, "text/plain; charset=utf-8", "note.txt"))
	if up.ContentURI.Homeserver != "localhost" {
		t.Fatalf("content_uri %s", up.ContentURI)
	}
	got := must[[]byte](t)(bob.DownloadBytes(ctx, up.ContentURI))
	if !bytes.Equal(got, data) {
		t.Fatalf("downloaded %q", got)
	}

	url := srv.URL + "/_matrix/client/v1/media/download/localhost/" + up.ContentURI.FileID
	r := mediaDo(t, "GET", url, bob.AccessToken, "", nil)
	for k, want := range map[string]string{
		"Content-Type":                 "text/plain; charset=utf-8",
		"Content-Disposition":          `inline; filename="note.txt"; filename*=utf-8''note.txt`,
		"X-Content-Type-Options":       "nosniff",
		"Cross-Origin-Resource-Policy": "cross-origin",
		"Content-Security-Policy":      "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	// The name in the path overrides the uploaded one.
	r = mediaDo(t, "GET", url+"/autre.txt", bob.AccessToken, "", nil)
	if cd := r.header.Get("Content-Disposition"); !strings.Contains(cd, "autre.txt") {
		t.Errorf("override name: %q", cd)
	}
	// Range requests are served (http.ServeContent).
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+bob.AccessToken)
	req.Header.Set("Range", "bytes=0-6")
	resp := must[*http.Response](t)(http.DefaultClient.Do(req))
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(part) != "bonjour" {
		t.Errorf("range: %d %q", resp.StatusCode, part)
	}

	// The authenticated endpoint needs a token.
	wantMediaErr(t, mediaDo(t, "GET", url, "", "", nil), 401, "M_MISSING_TOKEN")
	// The legacy endpoint is frozen by default.
	wantMediaErr(t, mediaDo(t, "GET", srv.URL+"/_matrix/media/v3/download/localhost/"+up.ContentURI.FileID, "", "", nil), 404, "M_NOT_FOUND")
	// Unknown and malformed IDs.
	wantMediaErr(t, mediaDo(t, "GET", srv.URL+"/_matrix/client/v1/media/download/localhost/nope", bob.AccessToken, "", nil), 404, "M_NOT_FOUND")
	wantMediaErr(t, mediaDo(t, "GET", srv.URL+"/_matrix/client/v1/media/download/localhost/..%2F..%2Fetc", bob.AccessToken, "", nil), 404, "M_NOT_FOUND")

	cfg := must[*mautrix.RespMediaConfig](t)(alice.GetMediaConfig(ctx))
	if cfg.UploadSize != srv.Config.Media.MaxUploadBytes {
		t.Errorf("m.upload.size = %d", cfg.UploadSize)
	}
	r = mediaDo(t, "GET", srv.URL+"/_matrix/media/v3/config", alice.AccessToken, "", nil)
	if r.status != 200 || r.json["m.upload.size"] == nil {
		t.Errorf("legacy config: %d %s", r.status, r.body)
	}
}

func TestMediaLegacyEndpointsWhenEnabled(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Media.LegacyUnauthenticated = true })
	alice := srv.RegisterUser(t, "alice")
	up := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctxT(t), []byte("x"), "application/octet-stream"))
	r := mediaDo(t, "GET", srv.URL+"/_matrix/media/v3/download/localhost/"+up.ContentURI.FileID, "", "", nil)
	if r.status != 200 || string(r.body) != "x" {
		t.Fatalf("legacy download: %d %s", r.status, r.body)
	}
}

func TestMediaAsyncUpload(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	created := must[*mautrix.RespCreateMXC](t)(alice.CreateMXC(ctx))
	if !created.UnusedExpiresAt.After(time.Now()) {
		t.Fatalf("unused_expires_at %v", created.UnusedExpiresAt)
	}
	mxc := created.ContentURI
	dl := srv.URL + "/_matrix/client/v1/media/download/localhost/" + mxc.FileID

	// Not uploaded yet: 504 M_NOT_YET_UPLOADED once timeout_ms passes.
	wantMediaErr(t, mediaDo(t, "GET", dl+"?timeout_ms=0", bob.AccessToken, "", nil), 504, "M_NOT_YET_UPLOADED")

	// A download waiting on it is answered when the content arrives.
	done := make(chan mediaResp, 1)
	go func() { done <- mediaDo(t, "GET", dl+"?timeout_ms=10000", bob.AccessToken, "", nil) }()
	time.Sleep(300 * time.Millisecond)

	put := srv.URL + "/_matrix/media/v3/upload/localhost/" + mxc.FileID
	// Only the creator may fill it.
	wantMediaErr(t, mediaDo(t, "PUT", put, bob.AccessToken, "text/plain", strings.NewReader("bob")), 403, "M_FORBIDDEN")
	_, err := alice.UploadMedia(ctx, mautrix.ReqUploadMedia{MXC: mxc, ContentBytes: []byte("async!"), ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.status != 200 || string(r.body) != "async!" {
		t.Fatalf("waiting download: %d %s", r.status, r.body)
	}
	// Once only.
	wantMediaErr(t, mediaDo(t, "PUT", put, alice.AccessToken, "text/plain", strings.NewReader("again")), 409, "M_CANNOT_OVERWRITE_MEDIA")
	wantMediaErr(t, mediaDo(t, "PUT", srv.URL+"/_matrix/media/v3/upload/localhost/unknownid", alice.AccessToken, "text/plain", strings.NewReader("x")), 404, "M_NOT_FOUND")
	wantMediaErr(t, mediaDo(t, "PUT", srv.URL+"/_matrix/media/v3/upload/elsewhere.example/"+mxc.FileID, alice.AccessToken, "text/plain", strings.NewReader("x")), 404, "M_NOT_FOUND")
}

func TestMediaPendingUploadsAreLimited(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Media.MaxPendingUploads = 2 })
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	for range 2 {
		must[*mautrix.RespCreateMXC](t)(alice.CreateMXC(ctx))
	}
	_, err := alice.CreateMXC(ctx)
	wantErr(t, err, "M_LIMIT_EXCEEDED", 429)
}

func TestMediaDeduplicated(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	data := bytes.Repeat([]byte("same content "), 1000)
	a := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, data, "application/octet-stream"))
	b := must[*mautrix.RespMediaUpload](t)(bob.UploadBytes(ctx, data, "application/octet-stream"))
	if a.ContentURI == b.ContentURI {
		t.Fatal("two uploads got one mxc URI")
	}
	if n := storedBlobs(t, srv); n != 1 {
		t.Fatalf("%d files stored for one content", n)
	}
	must[*mautrix.RespMediaUpload](t)(bob.UploadBytes(ctx, []byte("other"), "application/octet-stream"))
	if n := storedBlobs(t, srv); n != 2 {
		t.Fatalf("%d files stored for two contents", n)
	}
}

func TestMediaHostileUploads(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) {
		c.Media.MaxUploadBytes = 64 << 10
		c.Media.UserQuotaBytes = 100 << 10
	})
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	upload := srv.URL + "/_matrix/media/v3/upload"

	// Over the size limit: with a Content-Length, and chunked (no length).
	big := bytes.Repeat([]byte("x"), 64<<10+1)
	wantMediaErr(t, mediaDo(t, "POST", upload, alice.AccessToken, "application/octet-stream", bytes.NewReader(big)), 413, "M_TOO_LARGE")
	wantMediaErr(t, mediaDo(t, "POST", upload, alice.AccessToken, "application/octet-stream", io.MultiReader(bytes.NewReader(big))), 413, "M_TOO_LARGE")
	// Larger than client_api.max_body_bytes would not matter: the route
	// has its own limit (checked by the size of the accepted upload).
	if n := storedBlobs(t, srv); n != 0 {
		t.Fatalf("refused uploads left %d files", n)
	}

	// Path tricks in the filename are dropped; control characters too.
	r := mediaDo(t, "POST", upload+"?filename="+urlQuery("../../etc/pass\nwd"), alice.AccessToken, "text/plain", strings.NewReader("x"))
	if r.status != 200 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	mxc := must[id.ContentURI](t)(id.ParseContentURI(r.json["content_uri"].(string)))
	r = mediaDo(t, "GET", srv.URL+"/_matrix/client/v1/media/download/localhost/"+mxc.FileID, alice.AccessToken, "", nil)
	if cd := r.header.Get("Content-Disposition"); cd != `inline; filename="passwd"; filename*=utf-8''passwd` {
		t.Errorf("Content-Disposition %q", cd)
	}

	// A bogus or dangerous content type is served so that browsers do
	// not run it: HTML as an attachment, garbage as octet-stream.
	for ct, want := range map[string]string{
		"text/html":            "attachment",
		"image/svg+xml":        "attachment",
		"this is not a type":   "attachment",
		"image/png\r\nX-A: b":  "", // refused by the HTTP client itself; skipped
		"application/x-msdown": "attachment",
	} {
		if want == "" {
			continue
		}
		up := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, []byte("<script>alert(1)</script>"), ct))
		r := mediaDo(t, "GET", srv.URL+"/_matrix/client/v1/media/download/localhost/"+up.ContentURI.FileID, alice.AccessToken, "", nil)
		if !strings.HasPrefix(r.header.Get("Content-Disposition"), want) || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: disposition %q", ct, r.header.Get("Content-Disposition"))
		}
		if ct == "this is not a type" && r.header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("garbage type served as %q", r.header.Get("Content-Type"))
		}
	}

	// The quota: 100 KiB in total.
	chunk := bytes.Repeat([]byte("q"), 60<<10)
	must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, chunk, "application/octet-stream"))
	_, err := alice.UploadBytes(ctx, append(chunk, 'z'), "application/octet-stream")
	wantErr(t, err, "M_FORBIDDEN", 403)

	// No token, no upload.
	wantMediaErr(t, mediaDo(t, "POST", upload, "", "text/plain", strings.NewReader("x")), 401, "M_MISSING_TOKEN")
}

func urlQuery(s string) string {
	return strings.NewReplacer("%", "%25", "\n", "%0A", "/", "%2F", " ", "%20", "&", "%26").Replace(s)
}
