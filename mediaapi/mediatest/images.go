// Package mediatest makes images for the media tests.
package mediatest

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
)

// Gradient is a w x h gradient, so that scaling and cropping have
// something to work on.
func Gradient(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	return img
}

// Encode renders img as "image/jpeg", "image/png" or "image/gif".
func Encode(t testing.TB, format string, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	var err error
	switch format {
	case "image/jpeg":
		err = jpeg.Encode(&b, img, nil)
	case "image/png":
		err = png.Encode(&b, img)
	case "image/gif":
		err = gif.Encode(&b, img, nil)
	default:
		t.Fatalf("mediatest: unknown format %q", format)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
