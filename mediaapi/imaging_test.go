package mediaapi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"os"
	"runtime"
	"testing"

	"github.com/chappe-matrix/chappe/mediaapi/mediatest"
)

// bombPNG is a valid PNG header announcing width x height pixels, with
// no image data: a few dozen bytes that would decode to terabytes.
func bombPNG(width, height uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], width)
	binary.BigEndian.PutUint32(ihdr[4:], height)
	ihdr[8], ihdr[9] = 8, 6 // 8-bit RGBA
	chunk := func(typ string, data []byte) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		_ = binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

func TestThumbSize(t *testing.T) {
	cases := []struct {
		sw, sh, tw, th int
		method         string
		w, h           int
		ok             bool
	}{
		{4000, 3000, 800, 600, "scale", 800, 600, true},
		{4000, 2000, 800, 600, "scale", 800, 400, true},
		{1000, 3000, 320, 240, "scale", 80, 240, true},
		{4000, 3000, 96, 96, "crop", 96, 96, true},
		{100, 50, 96, 96, "crop", 96, 50, true},
		{50, 40, 96, 96, "crop", 50, 40, false}, // never upscale: serve the original
		{640, 480, 640, 480, "scale", 640, 480, false},
		{10000, 1, 32, 32, "scale", 32, 1, true},
	}
	for _, c := range cases {
		w, h, ok := thumbSize(c.sw, c.sh, c.tw, c.th, c.method)
		if w != c.w || h != c.h || ok != c.ok {
			t.Errorf("thumbSize(%d,%d,%d,%d,%s) = %d,%d,%v want %d,%d,%v", c.sw, c.sh, c.tw, c.th, c.method, w, h, ok, c.w, c.h, c.ok)
		}
	}
}

func TestDecodeAndResizeEveryFormat(t *testing.T) {
	src := mediatest.Gradient(400, 300)
	inputs := map[string][]byte{
		"image/jpeg": mediatest.Encode(t, "image/jpeg", src),
		"image/png":  mediatest.Encode(t, "image/png", src),
		"image/gif":  mediatest.Encode(t, "image/gif", src),
	}
	webp, err := os.ReadFile("testdata/blue-purple-pink.lossy.webp") // 150x100
	if err != nil {
		t.Fatal(err)
	}
	inputs["image/webp"] = webp
	for ct, data := range inputs {
		img, err := decodeBounded(ct, bytes.NewReader(data), 32_000_000)
		if err != nil {
			t.Fatalf("%s: %v", ct, err)
		}
		b := img.Bounds()
		for _, method := range []string{"scale", "crop"} {
			w, h, ok := thumbSize(b.Dx(), b.Dy(), 96, 96, method)
			if !ok {
				t.Fatalf("%s: expected a reduction", ct)
			}
			out := resize(img, w, h, method)
			if out.Bounds().Dx() != w || out.Bounds().Dy() != h {
				t.Errorf("%s %s: got %v, want %dx%d", ct, method, out.Bounds(), w, h)
			}
			var buf bytes.Buffer
			outType, err := encodeThumbnail(&buf, out, ct)
			if err != nil {
				t.Fatal(err)
			}
			cfg, _, err := image.DecodeConfig(&buf)
			if err != nil || cfg.Width != w || cfg.Height != h {
				t.Errorf("%s %s: encoded %s is %dx%d (%v)", ct, method, outType, cfg.Width, cfg.Height, err)
			}
		}
	}
}

// A 100000x100000 PNG header is refused from its header alone: the
// decoder never runs, so nothing near 40 GB is allocated.
func TestDecompressionBombRefusedWithoutAllocating(t *testing.T) {
	bomb := bombPNG(100000, 100000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := decodeBounded("image/png", bytes.NewReader(bomb), 32_000_000)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errTooManyPixels) {
		t.Fatalf("want errTooManyPixels, got %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("refusing the bomb allocated %d bytes", grew)
	}
}

func TestTruncatedImageIsAnError(t *testing.T) {
	data := mediatest.Encode(t, "image/png", mediatest.Gradient(200, 200))
	for _, cut := range []int{10, 40, len(data) / 2} {
		if _, err := decodeBounded("image/png", bytes.NewReader(data[:cut]), 32_000_000); err == nil {
			t.Errorf("truncated at %d: decoded", cut)
		}
	}
	jp := mediatest.Encode(t, "image/jpeg", mediatest.Gradient(200, 200))
	if _, err := decodeBounded("image/jpeg", bytes.NewReader(jp[:len(jp)/2]), 32_000_000); err == nil {
		t.Error("truncated JPEG decoded")
	}
	if _, err := decodeBounded("image/png", bytes.NewReader([]byte("GIF89a not a png")), 32_000_000); err == nil {
		t.Error("wrong format decoded")
	}
}

// BenchmarkThumbnail4000x3000JPEG: decode a 12 Mpx photo, scale it to
// 800x600 and encode the JPEG, as the first thumbnail request does.
func BenchmarkThumbnail4000x3000JPEG(b *testing.B) {
	data := mediatest.Encode(b, "image/jpeg", mediatest.Gradient(4000, 3000))
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		img, err := decodeBounded("image/jpeg", bytes.NewReader(data), 32_000_000)
		if err != nil {
			b.Fatal(err)
		}
		out := resize(img, 800, 600, "scale")
		var buf bytes.Buffer
		if _, err := encodeThumbnail(&buf, out, "image/jpeg"); err != nil {
			b.Fatal(err)
		}
	}
}
