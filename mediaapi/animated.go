package mediaapi

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"io"
)

// Animated thumbnails. Only GIF is decoded frame by frame: the standard
// library reads every GIF frame, while golang.org/x/image/webp decodes no
// animated WebP at all and image/png reads only the default image of an
// APNG. An animated WebP or APNG is still recognised as animated, so that
// it is never served as itself when a static thumbnail is asked for; asked
// for an animated one, it gets a static thumbnail (the spec's fallback).

// isAnimated tells whether the image has more than one frame, reading
// only its structure (no pixels are decoded).
func isAnimated(contentType string, r io.Reader) (bool, error) {
	br := bufio.NewReader(r)
	switch contentType {
	case "image/gif":
		s, err := scanGIF(br, -1)
		return s.frames > 1, err
	case "image/png":
		return pngHasACTL(br)
	case "image/webp":
		return webpAnimated(br)
	}
	return false, nil
}

// gifShape is what scanGIF learns of a GIF.
type gifShape struct {
	width, height int
	frames        int
}

// scanGIF walks the GIF's blocks without decoding any image data: the
// frame count is known before anything is allocated for the frames. It
// stops with errTooManyPixels as soon as frames x screen pixels exceed
// budget (when budget >= 0).
func scanGIF(r *bufio.Reader, budget int64) (gifShape, error) {
	var s gifShape
	var hdr [13]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return s, fmt.Errorf("gif header: %w", err)
	}
	if !bytes.HasPrefix(hdr[:], []byte("GIF87a")) && !bytes.HasPrefix(hdr[:], []byte("GIF89a")) {
		return s, errors.New("not a GIF")
	}
	s.width = int(binary.LittleEndian.Uint16(hdr[6:]))
	s.height = int(binary.LittleEndian.Uint16(hdr[8:]))
	if err := skipColorTable(r, hdr[10]); err != nil {
		return s, err
	}
	for {
		kind, err := r.ReadByte()
		if err != nil {
			return s, fmt.Errorf("gif block: %w", err)
		}
		switch kind {
		case 0x21: // extension: a label, then sub-blocks
			if _, err := r.ReadByte(); err != nil {
				return s, fmt.Errorf("gif extension: %w", err)
			}
		case 0x2c: // image descriptor, optional local table, LZW code size
			var desc [9]byte
			if _, err := io.ReadFull(r, desc[:]); err != nil {
				return s, fmt.Errorf("gif image descriptor: %w", err)
			}
			if err := skipColorTable(r, desc[8]); err != nil {
				return s, err
			}
			if _, err := r.ReadByte(); err != nil {
				return s, fmt.Errorf("gif image: %w", err)
			}
			s.frames++
			if budget >= 0 && int64(s.frames)*int64(s.width)*int64(s.height) > budget {
				return s, errTooManyPixels
			}
		case 0x3b: // trailer
			return s, nil
		default:
			return s, fmt.Errorf("gif: unknown block 0x%02x", kind)
		}
		if err := skipSubBlocks(r); err != nil {
			return s, err
		}
	}
}

// skipColorTable skips the color table a packed field announces.
func skipColorTable(r *bufio.Reader, packed byte) error {
	if packed&0x80 == 0 {
		return nil
	}
	if _, err := r.Discard(3 << ((packed & 7) + 1)); err != nil {
		return fmt.Errorf("gif color table: %w", err)
	}
	return nil
}

func skipSubBlocks(r *bufio.Reader) error {
	for {
		n, err := r.ReadByte()
		if err != nil {
			return fmt.Errorf("gif data: %w", err)
		}
		if n == 0 {
			return nil
		}
		if _, err := r.Discard(int(n)); err != nil {
			return fmt.Errorf("gif data: %w", err)
		}
	}
}

// pngHasACTL: an APNG announces its animation in an acTL chunk before the
// first IDAT.
func pngHasACTL(r *bufio.Reader) (bool, error) {
	if _, err := r.Discard(8); err != nil {
		return false, fmt.Errorf("png signature: %w", err)
	}
	var chunk [8]byte
	for {
		if _, err := io.ReadFull(r, chunk[:]); err != nil {
			return false, fmt.Errorf("png chunk: %w", err)
		}
		switch string(chunk[4:]) {
		case "acTL":
			return true, nil
		case "IDAT", "IEND":
			return false, nil
		}
		if _, err := r.Discard(int(binary.BigEndian.Uint32(chunk[:4])) + 4); err != nil { // data and CRC
			return false, fmt.Errorf("png chunk: %w", err)
		}
	}
}

// webpAnimated reads the animation flag of an extended (VP8X) WebP.
func webpAnimated(r *bufio.Reader) (bool, error) {
	var hdr [21]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return false, fmt.Errorf("webp header: %w", err)
	}
	if string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WEBP" {
		return false, errors.New("not a WebP")
	}
	return string(hdr[12:16]) == "VP8X" && hdr[20]&0x02 != 0, nil
}

// decodeGIFBounded decodes every frame of a GIF whose frames x screen
// pixels stay within maxPixels, checked from its structure first: a
// small file of thousands of large frames is refused before decoding.
func decodeGIFBounded(rs io.ReadSeeker, maxPixels int64) (*gif.GIF, error) {
	if _, err := scanGIF(bufio.NewReader(rs), maxPixels); err != nil {
		return nil, err
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind image: %w", err)
	}
	g, err := gif.DecodeAll(bufio.NewReader(rs))
	if err != nil {
		return nil, fmt.Errorf("decode gif: %w", err)
	}
	return g, nil
}

// resizeGIF makes the animated thumbnail. Each frame is composed on a
// canvas of the full screen as a viewer would (its offset, transparency
// and the previous frame's disposal applied), the canvas is scaled like a
// still image, and the result is mapped back to the frame's palette.
// Every output frame covers the whole thumbnail and is disposed to the
// background, so the source's disposal is already in the pixels; delays
// and the loop count are kept.
func resizeGIF(g *gif.GIF, w, h int, method string) *gif.GIF {
	screen := image.Rect(0, 0, g.Config.Width, g.Config.Height)
	canvas := image.NewRGBA(screen)
	out := &gif.GIF{
		LoopCount: g.LoopCount,
		Config:    image.Config{Width: w, Height: h},
	}
	quantizers := map[*color.Color]*quantizer{}
	var saved *image.RGBA
	for i, frame := range g.Image {
		disposal := byte(gif.DisposalNone)
		if i < len(g.Disposal) {
			disposal = g.Disposal[i]
		}
		if disposal == gif.DisposalPrevious {
			saved = image.NewRGBA(screen)
			copy(saved.Pix, canvas.Pix)
		}
		draw.Draw(canvas, frame.Bounds(), frame, frame.Bounds().Min, draw.Over)
		q := quantizers[paletteID(frame.Palette)]
		if q == nil {
			q = newQuantizer(frame.Palette)
			quantizers[paletteID(frame.Palette)] = q
		}
		out.Image = append(out.Image, q.paletted(resize(canvas, w, h, method).(*image.RGBA)))
		out.Delay = append(out.Delay, g.Delay[i])
		out.Disposal = append(out.Disposal, gif.DisposalBackground)
		switch disposal {
		case gif.DisposalBackground: // viewers clear to transparent
			draw.Draw(canvas, frame.Bounds(), image.Transparent, image.Point{}, draw.Src)
		case gif.DisposalPrevious:
			canvas = saved
		}
	}
	return out
}

// paletteID identifies a palette by its backing array: frames without a
// local table share the global one, and its quantizer.
func paletteID(p color.Palette) *color.Color {
	if len(p) == 0 {
		return nil
	}
	return &p[0]
}

// quantizer maps scaled pixels back to a palette. Scaling makes colours
// the palette lacks; the nearest entry of each (15-bit) colour is worked
// out once and remembered, which keeps this linear in the pixels rather
// than in pixels x palette size.
type quantizer struct {
	palette color.Palette
	opaque  [][3]int32 // palette entries as 8-bit RGB, transparent ones excluded
	index   []uint8    // opaque[i]'s index in palette
	trans   uint8
	memo    [1 << 15]int16
}

func newQuantizer(p color.Palette) *quantizer {
	q := &quantizer{palette: append(color.Palette(nil), p...)}
	found := false
	for i, c := range q.palette {
		r, g, b, a := c.RGBA()
		if a == 0 {
			if !found {
				q.trans, found = uint8(i), true
			}
			continue
		}
		q.opaque = append(q.opaque, [3]int32{int32(r >> 8), int32(g >> 8), int32(b >> 8)})
		q.index = append(q.index, uint8(i))
	}
	if !found { // the thumbnail's edges may need one: add or take the last slot
		if len(q.palette) == 256 {
			q.palette = q.palette[:255]
			q.opaque, q.index = q.opaque[:len(q.opaque)-1], q.index[:len(q.index)-1]
		}
		q.trans = uint8(len(q.palette))
		q.palette = append(q.palette, color.RGBA{})
	}
	if len(q.opaque) == 0 { // a palette of transparency only
		q.opaque, q.index = [][3]int32{{0, 0, 0}}, []uint8{q.trans}
	}
	for i := range q.memo {
		q.memo[i] = -1
	}
	return q
}

func (q *quantizer) paletted(src *image.RGBA) *image.Paletted {
	b := src.Bounds()
	dst := image.NewPaletted(b, q.palette)
	for y := 0; y < b.Dy(); y++ {
		row := src.Pix[y*src.Stride : y*src.Stride+b.Dx()*4]
		out := dst.Pix[y*dst.Stride:]
		for x := 0; x < b.Dx(); x++ {
			p := row[x*4 : x*4+4]
			a := int32(p[3])
			if a < 128 {
				out[x] = q.trans
				continue
			}
			// Un-premultiply the edges the scaler blended with transparency.
			r, g, bl := int32(p[0])*255/a, int32(p[1])*255/a, int32(p[2])*255/a
			out[x] = q.nearest(min(r, 255), min(g, 255), min(bl, 255))
		}
	}
	return dst
}

func (q *quantizer) nearest(r, g, b int32) uint8 {
	key := (r>>3)<<10 | (g>>3)<<5 | b>>3
	if i := q.memo[key]; i >= 0 {
		return q.index[i]
	}
	best, bestD := 0, int32(1<<31-1)
	for i, c := range q.opaque {
		dr, dg, db := c[0]-r, c[1]-g, c[2]-b
		if d := dr*dr + dg*dg + db*db; d < bestD {
			best, bestD = i, d
		}
	}
	q.memo[key] = int16(best)
	return q.index[best]
}
