// Package mediatest makes images for the media tests.
package mediatest

import (
	"bytes"
	"image"
	"image/color"
	"image/color/palette"
	"image/draw"
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

// AnimatedGIF is a w x h animation of n frames: a square moving across a
// gradient, the frames after the first covering only the part that
// changed (with offsets, transparency and varied disposal, as real GIFs
// do), each shown for 10 ms x (i+1).
func AnimatedGIF(t testing.TB, w, h, n int) []byte {
	t.Helper()
	g := &gif.GIF{Config: image.Config{Width: w, Height: h, ColorModel: color.Palette(palette.WebSafe)}}
	first := image.NewPaletted(image.Rect(0, 0, w, h), palette.WebSafe)
	draw.Draw(first, first.Bounds(), Gradient(w, h), image.Point{}, draw.Src)
	g.Image = append(g.Image, first)
	g.Delay = append(g.Delay, 10)
	g.Disposal = append(g.Disposal, gif.DisposalNone)
	side := max(1, min(w, h)/4)
	pal := append(color.Palette{color.Transparent}, palette.WebSafe[:200]...)
	for i := 1; i < n; i++ {
		x := (i * (w - side)) / max(1, n-1)
		r := image.Rect(x, (h-side)/2, x+side, (h-side)/2+side)
		f := image.NewPaletted(r, pal) // index 0: transparent
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for xx := r.Min.X; xx < r.Max.X; xx++ {
				if (xx+y)%5 != 0 { // a few holes show the canvas below
					f.SetColorIndex(xx, y, uint8(1+(i*7)%199))
				}
			}
		}
		g.Image = append(g.Image, f)
		g.Delay = append(g.Delay, 10*(i+1))
		g.Disposal = append(g.Disposal, []byte{gif.DisposalNone, gif.DisposalBackground, gif.DisposalPrevious}[i%3])
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, g); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
