package tests

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"

	"github.com/chappe-matrix/chappe/mediaapi/mediatest"
)

func previewOn(allowed ...string) testserver.Option {
	return func(c *config.Config) {
		c.Media.URLPreview.Enabled = true
		c.Media.URLPreview.AllowedCIDRs = allowed
	}
}

func TestMediaPreviewDisabledByDefault(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	_, err := alice.GetURLPreview(ctxT(t), "https://example.org/")
	wantErr(t, err, "M_UNKNOWN", 404)
}

// A page served on loopback stands for every internal service: previews
// must not reach it, whatever the URL looks like.
func TestMediaPreviewRefusesInternalAddresses(t *testing.T) {
	var hits atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, `<html><head><title>secret</title></head></html>`)
	}))
	defer internal.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(internal.URL, "http://"))
	srv := testserver.New(t, previewOn("192.0.2.0/24"))
	alice := srv.RegisterUser(t, "alice")
	ctx := ctxT(t)
	for _, target := range []string{
		internal.URL,
		"http://localhost:" + port + "/", // a name resolving to loopback
		"http://[::1]:" + port + "/",     // IPv6 loopback
		"http://[::ffff:127.0.0.1]:" + port + "/",
		"http://10.0.0.1/",
		"http://169.254.169.254/latest/meta-data/",
		"http://0.0.0.0:" + port + "/",
		"file:///etc/passwd",
	} {
		_, err := alice.GetURLPreview(ctx, target)
		code, status := errcode(err)
		if status != 403 && status != 400 {
			t.Errorf("%s: want 403 or 400, got %d %s (%v)", target, status, code, err)
		}
	}
	// Go's resolver does not read "127.1" as an address: it fails as an
	// unknown name (502), and never connects.
	_, err := alice.GetURLPreview(ctx, "http://127.1:"+port+"/")
	if _, status := errcode(err); status != 502 && status != 403 {
		t.Errorf("127.1: %v", err)
	}
	if hits.Load() != 0 {
		t.Fatalf("the internal server was reached %d times", hits.Load())
	}
}

func TestMediaPreviewRedirectToInternalRefused(t *testing.T) {
	var hits atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, `<title>secret</title>`)
	}))
	defer internal.Close()
	// The redirector listens on 127.0.0.1 too, so allow only its exact
	// address... which is also the internal one's. Use distinct loopback
	// addresses instead: the redirector on 127.0.0.2 is allowed, the
	// target on 127.0.0.1 is not.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	redirector := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.RedirectHandler(internal.URL, http.StatusFound)}}
	redirector.Start()
	defer redirector.Close()
	srv := testserver.New(t, previewOn("127.0.0.2/32"))
	alice := srv.RegisterUser(t, "alice")
	_, err = alice.GetURLPreview(ctxT(t), redirector.URL)
	wantErr(t, err, "M_FORBIDDEN", 403)
	if hits.Load() != 0 {
		t.Fatal("the redirect reached the internal server")
	}
}

func TestMediaPreviewAllowedServer(t *testing.T) {
	png := mediatest.Encode(t, "image/png", mediatest.Gradient(64, 48))
	var fetches atomic.Int32
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/logo.png":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(png)
		default:
			fetches.Add(1)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<html><head><title>Fallback</title>
<meta property="og:title" content="Ministère">
<meta property="og:description" content="Une page">
<meta property="og:image" content="/logo.png"></head><body>…</body></html>`)
		}
	}))
	defer site.Close()
	srv := testserver.New(t, previewOn("127.0.0.0/8"))
	alice := srv.RegisterUser(t, "alice")
	ctx := ctxT(t)
	p := must[*mautrix.RespPreviewURL](t)(alice.GetURLPreview(ctx, site.URL+"/page"))
	if p.Title != "Ministère" || p.Description != "Une page" {
		t.Fatalf("preview %+v", p)
	}
	if p.ImageURL == "" || p.ImageType != "image/png" || int(p.ImageWidth) != 64 || int(p.ImageHeight) != 48 || int(p.ImageSize) != len(png) {
		t.Fatalf("image %+v", p)
	}
	img := must[[]byte](t)(alice.DownloadBytes(ctx, p.ImageURL.ParseOrIgnore()))
	if len(img) != len(png) {
		t.Fatalf("preview image: %d bytes", len(img))
	}
	// Cached: the page is fetched once.
	must[*mautrix.RespPreviewURL](t)(alice.GetURLPreview(ctx, site.URL+"/page"))
	if fetches.Load() != 1 {
		t.Fatalf("page fetched %d times", fetches.Load())
	}
	// The legacy path serves the same.
	r := mediaDo(t, "GET", srv.URL+"/_matrix/media/v3/preview_url?url="+url.QueryEscape(site.URL+"/page"), alice.AccessToken, "", nil)
	if r.status != 200 || r.json["og:title"] != "Ministère" {
		t.Fatalf("legacy preview: %d %s", r.status, r.body)
	}
}
