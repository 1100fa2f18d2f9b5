package tests

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/gif"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"testing"

	_ "golang.org/x/image/webp"
	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/internal/testserver"
	"github.com/chappe-matrix/chappe/mediaapi/mediatest"
)

func TestMediaThumbnailsEveryMethodAndFormat(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	src := mediatest.Gradient(1000, 500)
	inputs := map[string][]byte{
		"image/jpeg": mediatest.Encode(t, "image/jpeg", src),
		"image/png":  mediatest.Encode(t, "image/png", src),
		"image/gif":  mediatest.Encode(t, "image/gif", src),
	}
	webp, err := os.ReadFile("../mediaapi/testdata/blue-purple-pink.lossy.webp") // 150x100
	if err != nil {
		t.Fatal(err)
	}
	inputs["image/webp"] = webp
	wantType := map[string]string{"image/jpeg": "image/jpeg", "image/png": "image/png", "image/gif": "image/png", "image/webp": "image/png"}
	for ct, data := range inputs {
		up := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, data, ct))
		cases := []struct {
			w, h   int
			method string
			// the configured size served, clipped to the source
			wantW, wantH int
		}{
			{32, 32, "crop", 32, 32},
			{90, 90, "crop", 96, 96},
			{300, 200, "scale", 320, 160},
			{600, 400, "scale", 640, 320},
			{800, 600, "scale", 800, 400},
		}
		for _, c := range cases {
			if ct == "image/webp" { // 150x100 source
				switch {
				case c.method == "scale":
					c.wantW, c.wantH = 150, 100 // smaller than asked: the original
				default:
					c.wantH = min(c.wantH, 100)
				}
			}
			resp := must[*httpResponse](t)(thumb(ctx, alice, up, c.w, c.h, c.method))
			if resp.StatusCode != 200 {
				t.Fatalf("%s %dx%d %s: %d %s", ct, c.w, c.h, c.method, resp.StatusCode, resp.body)
			}
			cfg, format, err := image.DecodeConfig(bytes.NewReader(resp.body))
			if err != nil {
				t.Fatalf("%s %dx%d %s: %v", ct, c.w, c.h, c.method, err)
			}
			if cfg.Width != c.wantW || cfg.Height != c.wantH {
				t.Errorf("%s %dx%d %s: got %dx%d (%s), want %dx%d", ct, c.w, c.h, c.method, cfg.Width, cfg.Height, format, c.wantW, c.wantH)
			}
			gotType := resp.Header.Get("Content-Type")
			if cfg.Width != 150 && gotType != wantType[ct] {
				t.Errorf("%s: thumbnail type %s", ct, gotType)
			}
		}
	}
	// Cached: asking again generates nothing new.
	before := storedBlobs(t, srv)
	up := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, inputs["image/png"], "image/png")) // deduplicated
	must[*httpResponse](t)(thumb(ctx, alice, up, 32, 32, "crop"))
	if after := storedBlobs(t, srv); after != before {
		t.Errorf("thumbnail regenerated: %d files, then %d", before, after)
	}
}

func TestMediaThumbnailHostileInputs(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	check := func(name string, data []byte, ct string, status int, code string) {
		t.Helper()
		up := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, data, ct))
		r := mediaDo(t, "GET", fmt.Sprintf("%s/_matrix/client/v1/media/thumbnail/localhost/%s?width=96&height=96&method=crop", srv.URL, up.ContentURI.FileID), alice.AccessToken, "", nil)
		if r.status != status || r.errcode() != code {
			t.Errorf("%s: want %d %s, got %d %s", name, status, code, r.status, r.body)
		}
	}
	png := mediatest.Encode(t, "image/png", mediatest.Gradient(300, 300))
	check("truncated png", png[:len(png)/2], "image/png", 400, "M_UNKNOWN")
	check("decompression bomb", bombPNGHeader(100000, 100000), "image/png", 413, "M_TOO_LARGE")
	check("wrong content type", []byte("%PDF-1.4 not an image"), "image/png", 400, "M_UNKNOWN")
	check("not an image type", []byte("hello"), "text/plain", 400, "M_UNKNOWN")
	check("svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), "image/svg+xml", 400, "M_UNKNOWN")

	up := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, png, "image/png"))
	base := srv.URL + "/_matrix/client/v1/media/thumbnail/localhost/" + up.ContentURI.FileID
	for _, q := range []string{"", "?width=0&height=10", "?width=-1&height=10", "?width=a&height=1", "?width=10&height=10&method=zoom", "?width=10&height=10&animated=maybe"} {
		wantMediaErr(t, mediaDo(t, "GET", base+q, alice.AccessToken, "", nil), 400, "M_INVALID_PARAM")
	}
	wantMediaErr(t, mediaDo(t, "GET", base+"?width=10&height=10", "", "", nil), 401, "M_MISSING_TOKEN")
	// animated=true on a still image behaves as false.
	if r := mediaDo(t, "GET", base+"?width=32&height=32&method=crop&animated=true", alice.AccessToken, "", nil); r.status != 200 {
		t.Errorf("animated=true: %d %s", r.status, r.body)
	}
}

// bombPNGHeader: a valid PNG header announcing w x h pixels, no data.
func bombPNGHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6
	for _, c := range []struct {
		typ  string
		data []byte
	}{{"IHDR", ihdr}, {"IDAT", []byte{0x78, 0x9c, 0x03, 0, 0, 0, 0, 1}}, {"IEND", nil}} {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(c.data)))
		b.WriteString(c.typ)
		b.Write(c.data)
		crc := crc32.NewIEEE()
		crc.Write([]byte(c.typ))
		crc.Write(c.data)
		_ = binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	return b.Bytes()
}

// animated=true on an animated GIF gives an animated GIF thumbnail (every
// frame, delays kept); without it, a still. Both are cached, apart.
func TestMediaAnimatedThumbnails(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	up := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, mediatest.AnimatedGIF(t, 480, 360, 8), "image/gif"))
	get := func(w, h int, method string, animated bool) *httpResponse {
		t.Helper()
		resp, err := alice.DownloadThumbnail(ctx, up.ContentURI, h, w, mautrix.DownloadThumbnailExtra{Method: method, Animated: animated})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return &httpResponse{Response: resp, body: body}
	}
	moving := get(300, 200, "scale", true)
	if ct := moving.Header.Get("Content-Type"); ct != "image/gif" {
		t.Fatalf("animated: %s", ct)
	}
	g, err := gif.DecodeAll(bytes.NewReader(moving.body))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Image) != 8 || g.Config.Width != 320 || g.Config.Height != 240 || g.Delay[7] != 80 {
		t.Fatalf("animated thumbnail: %d frames of %dx%d, delays %v", len(g.Image), g.Config.Width, g.Config.Height, g.Delay)
	}
	if ct := get(300, 200, "scale", false).Header.Get("Content-Type"); ct != "image/png" {
		t.Fatalf("still: %s", ct)
	}
	// A GIF smaller than asked is served as itself only when animation is
	// wanted; otherwise its first frame, as a PNG of the same size.
	small := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, mediatest.AnimatedGIF(t, 60, 40, 4), "image/gif"))
	up = small
	if r := get(96, 96, "crop", true); r.Header.Get("Content-Type") != "image/gif" || !bytes.Equal(r.body, mediatest.AnimatedGIF(t, 60, 40, 4)) {
		t.Errorf("small, animated: %s", r.Header.Get("Content-Type"))
	}
	r := get(96, 96, "crop", false)
	if cfg, format, err := image.DecodeConfig(bytes.NewReader(r.body)); err != nil || format != "png" || cfg.Width != 60 || cfg.Height != 40 {
		t.Errorf("small, still: %s %dx%d %v", format, cfg.Width, cfg.Height, err)
	}
	// Cached: asking again stores nothing new.
	before := storedBlobs(t, srv)
	get(96, 96, "crop", false)
	get(96, 96, "crop", true)
	if after := storedBlobs(t, srv); after != before {
		t.Errorf("regenerated: %d files, then %d", before, after)
	}
}
