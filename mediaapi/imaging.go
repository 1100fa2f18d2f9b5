package mediaapi

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// The formats thumbnails are made from. Decoders are called directly
// (not through image.Decode's registry) so only these four are ever run.
var decoders = map[string]struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}{
	"image/jpeg": {jpeg.DecodeConfig, jpeg.Decode},
	"image/png":  {png.DecodeConfig, png.Decode},
	"image/gif":  {gif.DecodeConfig, gif.Decode}, // first frame; all of them in animated.go
	"image/webp": {webp.DecodeConfig, webp.Decode},
}

func canThumbnail(contentType string) bool {
	_, ok := decoders[contentType]
	return ok
}

var errTooManyPixels = errors.New("image has too many pixels to thumbnail")

// imageConfig reads only the header: the dimensions are known before any
// pixel buffer is allocated.
func imageConfig(contentType string, r io.Reader) (image.Config, error) {
	d, ok := decoders[contentType]
	if !ok {
		return image.Config{}, fmt.Errorf("cannot thumbnail %s", contentType)
	}
	return d.config(bufio.NewReader(r))
}

// decodeBounded decodes an image whose header (read first, from the
// same bytes) announces at most maxPixels: the defence against
// decompression bombs, whose few kilobytes claim gigapixels.
func decodeBounded(contentType string, rs io.ReadSeeker, maxPixels int64) (image.Image, error) {
	cfg, err := imageConfig(contentType, rs)
	if err != nil {
		return nil, fmt.Errorf("read image header: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("image has no pixels")
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return nil, errTooManyPixels
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind image: %w", err)
	}
	img, err := decoders[contentType].decode(bufio.NewReader(rs))
	if err != nil {
		return nil, fmt.Errorf("decode image: %w", err)
	}
	// A decoder must not return more than its header said (GIF frames,
	// for one, are checked against the screen), but be sure.
	if b := img.Bounds(); int64(b.Dx())*int64(b.Dy()) > maxPixels {
		return nil, errTooManyPixels
	}
	return img, nil
}

// thumbSize is the size a thumbnail will have for a source of sw x sh
// and a target tw x th: "scale" fits the image inside the target keeping
// its aspect ratio, "crop" fills the target exactly (cutting the excess).
// Neither ever upscales; ok is false when the source is already no larger
// than the target, which is then served as is.
func thumbSize(sw, sh, tw, th int, method string) (w, h int, ok bool) {
	if sw <= tw && sh <= th {
		return sw, sh, false
	}
	if method == "crop" {
		return min(tw, sw), min(th, sh), true
	}
	// Scale by the smaller ratio, at least one pixel each way.
	if sw*th <= sh*tw { // height is the binding side
		w, h = max(1, sw*th/sh), th
	} else {
		w, h = tw, max(1, sh*tw/sw)
	}
	return w, h, true
}

// resize produces the thumbnail: for crop, the largest centred region of
// the source with the target's aspect ratio, scaled down to it.
func resize(src image.Image, w, h int, method string) image.Image {
	sb := src.Bounds()
	region := sb
	if method == "crop" {
		sw, sh := sb.Dx(), sb.Dy()
		// Keep the whole width or the whole height, whichever fits.
		if sw*h > sh*w { // source wider than the target's aspect
			cw := sh * w / h
			x0 := sb.Min.X + (sw-cw)/2
			region = image.Rect(x0, sb.Min.Y, x0+cw, sb.Max.Y)
		} else {
			ch := sw * h / w
			y0 := sb.Min.Y + (sh-ch)/2
			region = image.Rect(sb.Min.X, y0, sb.Max.X, y0+ch)
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	if region.Dx() == w && region.Dy() == h {
		draw.Draw(dst, dst.Bounds(), src, region.Min, draw.Src)
		return dst
	}
	// ApproxBiLinear: a large reduction factor with BiLinear or
	// CatmullRom reads every source pixel for every output one; this is
	// many times faster, and good enough at thumbnail size.
	xdraw.ApproxBiLinear.Scale(dst, dst.Bounds(), src, region, xdraw.Src, nil)
	return dst
}

// encodeThumbnail writes JPEG for JPEG sources (photos) and PNG for the
// others (which may have transparency).
func encodeThumbnail(w io.Writer, img image.Image, sourceType string) (string, error) {
	if sourceType == "image/jpeg" {
		return "image/jpeg", jpeg.Encode(w, img, &jpeg.Options{Quality: 80})
	}
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	return "image/png", enc.Encode(w, img)
}
