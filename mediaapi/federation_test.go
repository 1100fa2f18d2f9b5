package mediaapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/mediaapi/mediatest"
)

// federationFront serves a MediaAPI's federation media endpoints as the
// federation component will (minus the request signatures).
func federationFront(t *testing.T, api *MediaAPI) *httptest.Server {
	mux := http.NewServeMux()
	serve := func(f func(http.ResponseWriter, *http.Request, string) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r, r.PathValue("mediaId")); err != nil {
				httputil.WriteError(w, slog.Default(), err)
			}
		}
	}
	mux.HandleFunc("GET /_matrix/federation/v1/media/download/{mediaId}", serve(api.ServeFederationDownload))
	mux.HandleFunc("GET /_matrix/federation/v1/media/thumbnail/{mediaId}", serve(api.ServeFederationThumbnail))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// httpFetcher is a RemoteFetcher over plain HTTP to one server's
// federation front, reading answers with ParseFederationMultipart and
// following a Location, as the federation component's fetcher does.
type httpFetcher struct{ base string }

func (f httpFetcher) Download(ctx context.Context, _, mediaID string) (io.ReadCloser, string, string, error) {
	return f.get(ctx, "/_matrix/federation/v1/media/download/"+mediaID)
}

func (f httpFetcher) Thumbnail(ctx context.Context, _, mediaID string, w, h int, method string, animated bool) (io.ReadCloser, string, string, error) {
	q := url.Values{"width": {fmt.Sprint(w)}, "height": {fmt.Sprint(h)}, "method": {method}, "animated": {fmt.Sprint(animated)}}
	return f.get(ctx, "/_matrix/federation/v1/media/thumbnail/"+mediaID+"?"+q.Encode())
}

func (f httpFetcher) get(ctx context.Context, path string) (io.ReadCloser, string, string, error) {
	resp, err := httpGet(ctx, f.base+path)
	if err != nil {
		return nil, "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e mxerr.Error
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			return nil, "", "", fmt.Errorf("status %d", resp.StatusCode)
		}
		e.Status = resp.StatusCode
		return nil, "", "", &e
	}
	fm, err := ParseFederationMultipart(resp.Header.Get("Content-Type"), resp.Body)
	if err != nil {
		return nil, "", "", err
	}
	if fm.Location != "" {
		loc, err := httpGet(ctx, fm.Location)
		if err != nil {
			return nil, "", "", err
		}
		return loc.Body, loc.Header.Get("Content-Type"), "", nil
	}
	return fm.Body, fm.ContentType, fm.Filename, nil
}

func httpGet(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

// Server b fetches server a's media through a's federation endpoints:
// ServeFederation* and ParseFederationMultipart against each other.
func TestFederationMediaBetweenServers(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		a := newHarness(t, backend, "a.test", nil)
		b := newHarness(t, backend, "b.test", nil)
		b.api.SetRemoteFetcher(httpFetcher{base: federationFront(t, a.api).URL})
		ctx := ctxT(t)

		data := []byte("rapport confidentiel\n")
		up, err := a.alice.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: data, ContentType: "text/plain", FileName: "note d’été.txt"})
		if err != nil {
			t.Fatal(err)
		}
		resp, body := b.get("/_matrix/client/v1/media/download/a.test/"+up.ContentURI.FileID, aliceToken)
		if resp.StatusCode != 200 || !bytes.Equal(body, data) {
			t.Fatalf("download through b: %d %q", resp.StatusCode, body)
		}
		if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "note%20d%E2%80%99%C3%A9t%C3%A9.txt") {
			t.Errorf("the name did not cross: %q", cd)
		}

		// A thumbnail of media b has not cached: a's thumbnail.
		src := mediatest.Encode(t, "image/jpeg", mediatest.Gradient(1000, 800))
		img, err := a.alice.UploadBytes(ctx, src, "image/jpeg")
		if err != nil {
			t.Fatal(err)
		}
		resp, body = b.get("/_matrix/client/v1/media/thumbnail/a.test/"+img.ContentURI.FileID+"?width=96&height=96&method=crop", aliceToken)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("thumbnail through b: %d %s", resp.StatusCode, body)
		}
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(body)); err != nil || cfg.Width != 96 || cfg.Height != 96 {
			t.Fatalf("thumbnail %dx%d %v", cfg.Width, cfg.Height, err)
		}

		// a's errors cross: unknown, and quarantined (a never serves it).
		resp, body = b.get("/_matrix/client/v1/media/download/a.test/unknownid", aliceToken)
		if resp.StatusCode != 404 || !bytes.Contains(body, []byte("M_NOT_FOUND")) {
			t.Errorf("unknown: %d %s", resp.StatusCode, body)
		}
		q, err := a.alice.UploadBytes(ctx, []byte("x"), "text/plain")
		if err != nil {
			t.Fatal(err)
		}
		if resp, body := a.postAdmin("/_synapse/admin/v1/media/quarantine/a.test/" + q.ContentURI.FileID); resp.StatusCode != 200 {
			t.Fatalf("quarantine: %d %s", resp.StatusCode, body)
		}
		if resp, body := b.get("/_matrix/client/v1/media/download/a.test/"+q.ContentURI.FileID, aliceToken); resp.StatusCode != 404 {
			t.Errorf("quarantined: %d %s", resp.StatusCode, body)
		}
		// Pending async upload: a waits up to timeout_ms, then 504.
		created, err := a.alice.CreateMXC(ctx)
		if err != nil {
			t.Fatal(err)
		}
		front := federationFront(t, a.api)
		r, err := httpGet(ctx, front.URL+"/_matrix/federation/v1/media/download/"+created.ContentURI.FileID+"?timeout_ms=0")
		if err != nil {
			t.Fatal(err)
		}
		_ = r.Body.Close()
		if r.StatusCode != 504 {
			t.Errorf("pending: %d", r.StatusCode)
		}
		// Bad thumbnail parameters are a 400, before any lookup.
		r, err = httpGet(ctx, front.URL+"/_matrix/federation/v1/media/thumbnail/"+img.ContentURI.FileID+"?width=0&height=1")
		if err != nil {
			t.Fatal(err)
		}
		_ = r.Body.Close()
		if r.StatusCode != 400 {
			t.Errorf("bad thumbnail request: %d", r.StatusCode)
		}
	})
}

// The second part may be a Location to fetch the media from instead.
func TestFederationMultipartLocation(t *testing.T) {
	data := []byte("from elsewhere")
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(data)
	}))
	defer files.Close()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mw := multipart.NewWriter(w)
		w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
		meta, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
		_, _ = meta.Write([]byte(`{"future": true}`))
		_, _ = mw.CreatePart(textproto.MIMEHeader{"Location": {files.URL + "/x"}})
		_ = mw.Close()
	}))
	defer front.Close()

	resp, err := httpGet(context.Background(), front.URL)
	if err != nil {
		t.Fatal(err)
	}
	fm, err := ParseFederationMultipart(resp.Header.Get("Content-Type"), resp.Body)
	if err != nil || fm.Location != files.URL+"/x" || fm.Body != nil || string(fm.Metadata) != `{"future": true}` {
		t.Fatalf("%+v %v", fm, err)
	}

	eachBackend(t, func(t *testing.T, backend string) {
		b := newHarness(t, backend, "b.test", nil)
		b.api.SetRemoteFetcher(httpFetcher{base: front.URL})
		got, err := b.alice.DownloadBytes(ctxT(t), id.ContentURI{Homeserver: "a.test", FileID: "elsewhere"})
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%q %v", got, err)
		}
	})
}

func TestParseFederationMultipartRejects(t *testing.T) {
	mk := func(parts ...[2]string) (string, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for _, p := range parts {
			w, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {p[0]}})
			_, _ = w.Write([]byte(p[1]))
		}
		_ = mw.Close()
		return "multipart/mixed; boundary=" + mw.Boundary(), b.String()
	}
	ct1, onePart := mk([2]string{"application/json", "{}"})
	ct2, notJSON := mk([2]string{"application/json", "[1]"}, [2]string{"text/plain", "x"})
	ct3, good := mk([2]string{"application/json", "{}"}, [2]string{"", "x"})
	cases := []struct{ name, ct, body string }{
		{"not multipart", "application/json", "{}"},
		{"no boundary", "multipart/mixed", good},
		{"one part", ct1, onePart},
		{"metadata not an object", ct2, notJSON},
		{"truncated", ct3, good[:20]},
	}
	for _, c := range cases {
		if _, err := ParseFederationMultipart(c.ct, io.NopCloser(strings.NewReader(c.body))); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	fm, err := ParseFederationMultipart(ct3, io.NopCloser(strings.NewReader(good)))
	if err != nil || fm.ContentType != "application/octet-stream" {
		t.Fatalf("no content type: %+v %v", fm, err)
	}
	if data, _ := io.ReadAll(fm.Body); string(data) != "x" {
		t.Errorf("content %q", data)
	}
}
