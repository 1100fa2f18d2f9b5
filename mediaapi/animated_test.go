package mediaapi

import (
	"bufio"
	"bytes"
	"errors"
	"image/gif"
	"os"
	"testing"

	"github.com/chappe-matrix/chappe/mediaapi/mediatest"
)

func TestIsAnimated(t *testing.T) {
	still := mediatest.Gradient(40, 30)
	webp, err := os.ReadFile("testdata/blue-purple-pink.lossy.webp")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, ct string
		data     []byte
		want     bool
	}{
		{"animated gif", "image/gif", mediatest.AnimatedGIF(t, 40, 30, 5), true},
		{"one-frame gif", "image/gif", mediatest.Encode(t, "image/gif", still), false},
		{"png", "image/png", mediatest.Encode(t, "image/png", still), false},
		{"apng", "image/png", apng(mediatest.Encode(t, "image/png", still)), true},
		{"jpeg", "image/jpeg", mediatest.Encode(t, "image/jpeg", still), false},
		{"lossy webp", "image/webp", webp, false},
		{"animated webp", "image/webp", animatedWebPHeader(), true},
	}
	for _, c := range cases {
		got, err := isAnimated(c.ct, bytes.NewReader(c.data))
		if err != nil || got != c.want {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

// apng inserts an acTL chunk after the IHDR of a PNG, as an APNG has.
func apng(png []byte) []byte {
	const ihdrEnd = 8 + 8 + 13 + 4
	actl := []byte{0, 0, 0, 8, 'a', 'c', 'T', 'L', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}
	return append(append(append([]byte(nil), png[:ihdrEnd]...), actl...), png[ihdrEnd:]...)
}

// animatedWebPHeader is the start of an extended WebP with the animation
// flag (no decoder here reads further).
func animatedWebPHeader() []byte {
	b := []byte("RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00")
	return append(b, 0x02, 0, 0, 0, 9, 0, 0, 9, 0, 0)
}

func TestResizeGIFKeepsFramesAndDelays(t *testing.T) {
	src := mediatest.AnimatedGIF(t, 400, 300, 12)
	g, err := decodeGIFBounded(bytes.NewReader(src), 32_000_000)
	if err != nil {
		t.Fatal(err)
	}
	out := resizeGIF(g, 96, 72, "scale")
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, out); err != nil {
		t.Fatal(err)
	}
	back, err := gif.DecodeAll(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Image) != 12 || back.Config.Width != 96 || back.Config.Height != 72 {
		t.Fatalf("got %d frames of %dx%d", len(back.Image), back.Config.Width, back.Config.Height)
	}
	for i, d := range back.Delay {
		if d != g.Delay[i] {
			t.Errorf("frame %d: delay %d, want %d", i, d, g.Delay[i])
		}
	}
	// The moving square (75 px, centred at y=150, at x=325..400 in the
	// last frame) shows there in the last frame and not in the first.
	first, last := back.Image[0], back.Image[11]
	if first.At(87, 36) == last.At(87, 36) {
		t.Errorf("the square is not in the last frame: %v", last.At(87, 36))
	}
	if first.At(40, 10) != last.At(40, 10) {
		t.Errorf("the background changed away from the square: %v vs %v", first.At(40, 10), last.At(40, 10))
	}
}

// A few hundred bytes announcing thousands of full-screen frames are
// refused from their structure alone, before any frame is decoded.
func TestAnimatedGIFBombRefused(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("GIF89a")
	b.Write([]byte{0x10, 0x27, 0x10, 0x27, 0, 0, 0}) // 10000x10000 screen, no global table
	for range 5000 {
		b.Write([]byte{0x2c, 0, 0, 0, 0, 0x10, 0x27, 0x10, 0x27, 0, 2, 0}) // a frame with no data
	}
	b.WriteByte(0x3b)
	_, err := decodeGIFBounded(bytes.NewReader(b.Bytes()), 32_000_000)
	if !errors.Is(err, errTooManyPixels) {
		t.Fatalf("want errTooManyPixels, got %v", err)
	}
	s, err := scanGIF(bufio.NewReader(bytes.NewReader(b.Bytes())), -1)
	if err != nil || s.frames != 5000 {
		t.Fatalf("scan: %d frames, %v", s.frames, err)
	}
}

func TestScanGIFRejectsGarbage(t *testing.T) {
	for _, data := range [][]byte{[]byte("GIF89a"), []byte("PNG not a gif at all"), append([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00"), 0x99)} {
		if _, err := scanGIF(bufio.NewReader(bytes.NewReader(data)), -1); err == nil {
			t.Errorf("%q: no error", data)
		}
	}
}

// BenchmarkAnimatedThumbnail: a 480x360 GIF of 30 frames to the 320x240
// animated thumbnail, decode to encode.
func BenchmarkAnimatedThumbnail(b *testing.B) {
	data := mediatest.AnimatedGIF(b, 480, 360, 30)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		g, err := decodeGIFBounded(bytes.NewReader(data), 32_000_000)
		if err != nil {
			b.Fatal(err)
		}
		w, h, _ := thumbSize(480, 360, 320, 240, "scale")
		var buf bytes.Buffer
		if err := gif.EncodeAll(&buf, resizeGIF(g, w, h, "scale")); err != nil {
			b.Fatal(err)
		}
	}
}
