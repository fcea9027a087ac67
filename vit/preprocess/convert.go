package preprocess

import (
	"image"
	"image/color"
)

// toRGB converts like PIL's Image.convert("RGB"): grayscale is replicated,
// palettes are looked up, and alpha is dropped without compositing onto any
// background. Straight (non-premultiplied) values are read wherever the
// decoder keeps them, because RGBA() premultiplies and would darken
// translucent pixels, which PIL does not do.
func toRGB(img image.Image) *raster {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := newRaster(w, h, 3)
	set := func(x, y int, r, g, bl uint8) {
		i := (y*w + x) * 3
		out.pix[i], out.pix[i+1], out.pix[i+2] = r, g, bl
	}
	switch m := img.(type) {
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
			o := out.pix[3*w*y : 3*w*(y+1)]
			for x := 0; x < w; x++ {
				o[3*x], o[3*x+1], o[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.NRGBA64:
		// PIL reads 16-bit PNG channels by keeping the high byte.
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:8*w]
			for x := 0; x < w; x++ {
				set(x, y, row[8*x], row[8*x+2], row[8*x+4])
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:w]
			for x, v := range row {
				set(x, y, v, v, v)
			}
		}
	case *image.YCbCr:
		// The chroma filter's phase is relative to the whole decoded image,
		// which a sub-image no longer tells us.
		if b.Min == (image.Point{}) {
			return libjpegRGB(m)
		}
		fillGeneric(img, set)
	case *image.RGBA:
		// Decoders only produce RGBA for opaque images, where premultiplied
		// equals straight; anything else takes the careful path.
		if m.Opaque() {
			for y := 0; y < h; y++ {
				row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
				o := out.pix[3*w*y : 3*w*(y+1)]
				for x := 0; x < w; x++ {
					o[3*x], o[3*x+1], o[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
				}
			}
			break
		}
		fillGeneric(img, set)
	case *image.Paletted:
		pal := make([]color.NRGBA, len(m.Palette))
		for i, c := range m.Palette {
			pal[i] = straight(c)
		}
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:w]
			for x, idx := range row {
				var c color.NRGBA // an index past the palette (corrupt file): black
				if int(idx) < len(pal) {
					c = pal[idx]
				}
				set(x, y, c.R, c.G, c.B)
			}
		}
	default:
		fillGeneric(img, set)
	}
	return out
}

func fillGeneric(img image.Image, set func(x, y int, r, g, b uint8)) {
	b := img.Bounds()
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			c := straight(img.At(b.Min.X+x, b.Min.Y+y))
			set(x, y, c.R, c.G, c.B)
		}
	}
}

// straight returns a color's non-premultiplied 8-bit value, taking 16-bit
// channels' high byte as PIL does rather than rounding.
func straight(c color.Color) color.NRGBA {
	switch v := c.(type) {
	case color.NRGBA:
		return v
	case color.NRGBA64:
		return color.NRGBA{uint8(v.R >> 8), uint8(v.G >> 8), uint8(v.B >> 8), uint8(v.A >> 8)}
	case color.Gray:
		return color.NRGBA{v.Y, v.Y, v.Y, 255}
	case color.Gray16:
		y := uint8(v.Y >> 8)
		return color.NRGBA{y, y, y, 255}
	case color.RGBA:
		if v.A == 255 {
			return color.NRGBA{v.R, v.G, v.B, 255}
		}
	}
	r, g, b, a := c.RGBA()
	if a == 0 {
		// Fully transparent premultiplied colours have lost their RGB.
		return color.NRGBA{}
	}
	if a != 0xffff {
		r, g, b = r*0xffff/a, g*0xffff/a, b*0xffff/a
	}
	return color.NRGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
}

// toGray converts like PIL's Image.convert("L"): ITU-R 601-2 luma in Pillow's
// 16-bit fixed point (Convert.c, L24: weights 19595/38470/7471 summing to
// 65536, plus 0x8000 to round, then >> 16), so gray inputs keep their levels.
func toGray(img image.Image) *raster {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := newRaster(w, h, 1)
	if m, ok := img.(*image.Gray); ok {
		for y := 0; y < h; y++ {
			copy(out.pix[y*w:(y+1)*w], m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):])
		}
		return out
	}
	rgb := toRGB(img)
	for i := range out.pix {
		out.pix[i] = luma(rgb.pix[3*i], rgb.pix[3*i+1], rgb.pix[3*i+2])
	}
	return out
}

func luma(r, g, b uint8) uint8 {
	return uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}
