package preprocess

import "image"

// Colour JPEGs store chroma at reduced resolution. Go's image.YCbCr.At
// repeats each chroma sample (a box filter), but Pillow decodes through
// libjpeg(-turbo), whose default "fancy upsampling" interpolates chroma with
// a triangle filter and then converts with its own fixed-point tables. On
// sharp colour edges the two differ by tens of levels, so for the input
// tensor to match the original pipelines we redo both steps as libjpeg does
// (jdsample.c and jdcolor.c in libjpeg-turbo 2.1, the one Debian's Pillow
// uses). Only the IDCT itself still differs (Go's vs libjpeg's islow), by a
// level here and there.

// libjpegRGB converts a decoded YCbCr JPEG image to RGB like libjpeg.
func libjpegRGB(m *image.YCbCr) *raster {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	cw, ch := chromaSize(w, h, m.SubsampleRatio)
	cb := upsampleChroma(m.Cb, m.CStride, chromaOrigin(m), cw, ch, w, h, m.SubsampleRatio)
	cr := upsampleChroma(m.Cr, m.CStride, chromaOrigin(m), cw, ch, w, h, m.SubsampleRatio)
	out := newRaster(w, h, 3)
	for y := 0; y < h; y++ {
		yrow := m.Y[m.YOffset(b.Min.X, b.Min.Y+y):]
		for x := 0; x < w; x++ {
			i := y*w + x
			r, g, bl := libjpegYCbCrToRGB(yrow[x], cb[i], cr[i])
			out.pix[3*i], out.pix[3*i+1], out.pix[3*i+2] = r, g, bl
		}
	}
	return out
}

// chromaOrigin is the index of the chroma sample of the top-left pixel.
func chromaOrigin(m *image.YCbCr) int {
	return m.COffset(m.Rect.Min.X, m.Rect.Min.Y)
}

// chromaSize is libjpeg's downsampled_width/height: ceil(size/factor).
func chromaSize(w, h int, r image.YCbCrSubsampleRatio) (int, int) {
	fx, fy := chromaFactors(r)
	return (w + fx - 1) / fx, (h + fy - 1) / fy
}

func chromaFactors(r image.YCbCrSubsampleRatio) (int, int) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return 2, 1
	case image.YCbCrSubsampleRatio420:
		return 2, 2
	case image.YCbCrSubsampleRatio440:
		return 1, 2
	case image.YCbCrSubsampleRatio411:
		return 4, 1
	case image.YCbCrSubsampleRatio410:
		return 4, 2
	}
	return 1, 1
}

// upsampleChroma returns a w×h plane from the cw×ch plane at plane[origin:]
// (row stride stride), choosing libjpeg's method for the ratio: triangle
// filters for 2:1 factors, replication otherwise. Rows and columns beyond
// the edges repeat the edge, as libjpeg's context rows do.
func upsampleChroma(plane []uint8, stride, origin, cw, ch, w, h int, ratio image.YCbCrSubsampleRatio) []uint8 {
	at := func(x, y int) int {
		x = min(max(x, 0), cw-1)
		y = min(max(y, 0), ch-1)
		return int(plane[origin+y*stride+x])
	}
	out := make([]uint8, w*h)
	fx, fy := chromaFactors(ratio)
	fancyH := fx == 2 && cw > 2
	switch {
	case fx == 2 && fy == 2 && fancyH: // h2v2_fancy_upsample
		for y := 0; y < h; y++ {
			cy, near := y/2, y/2-1 // even output rows lean on the row above
			if y%2 == 1 {
				near = cy + 1
			}
			colsum := func(cx int) int { return 3*at(cx, cy) + at(cx, near) }
			for x := 0; x < w; x++ {
				cx := x / 2
				if x%2 == 0 {
					out[y*w+x] = uint8((3*colsum(cx) + colsum(cx-1) + 8) >> 4)
				} else {
					out[y*w+x] = uint8((3*colsum(cx) + colsum(cx+1) + 7) >> 4)
				}
			}
		}
	case fx == 2 && fy == 1 && fancyH: // h2v1_fancy_upsample
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				cx := x / 2
				if x%2 == 0 {
					out[y*w+x] = uint8((3*at(cx, y) + at(cx-1, y) + 1) >> 2)
				} else {
					out[y*w+x] = uint8((3*at(cx, y) + at(cx+1, y) + 2) >> 2)
				}
			}
		}
	case fx == 1 && fy == 2: // h1v2_fancy_upsample
		for y := 0; y < h; y++ {
			cy, near, bias := y/2, y/2-1, 1
			if y%2 == 1 {
				near, bias = cy+1, 2
			}
			for x := 0; x < w; x++ {
				out[y*w+x] = uint8((3*at(x, cy) + at(x, near) + bias) >> 2)
			}
		}
	default: // fullsize and int_upsample: replicate
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				out[y*w+x] = uint8(at(x/fx, y/fy))
			}
		}
	}
	return out
}

// libjpeg's ycc_rgb_convert (jdcolor.c): 16-bit fixed point with constants
// FIX(1.40200), FIX(1.77200), FIX(0.71414), FIX(0.34414) and ONE_HALF
// rounding, then clamped. Go's color.YCbCrToRGB rounds differently.
func libjpegYCbCrToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	const (
		scaleBits = 16
		oneHalf   = 1 << (scaleBits - 1)
	)
	Y, Cb, Cr := int(y), int(cb)-128, int(cr)-128
	r := Y + (91881*Cr+oneHalf)>>scaleBits
	g := Y + (-22554*Cb+oneHalf-46802*Cr)>>scaleBits
	b := Y + (116130*Cb+oneHalf)>>scaleBits
	return clamp8(r), clamp8(g), clamp8(b)
}

func clamp8(v int) uint8 {
	return uint8(min(max(v, 0), 255))
}
