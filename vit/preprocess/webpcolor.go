package preprocess

import "image"

// Lossy WebP (VP8) stores limited-range BT.601 YUV 4:2:0, but
// golang.org/x/image/webp returns it as image.YCbCr, whose conversion is the
// full-range JPEG one: colours come out with too little contrast
// (golang/go#40173). Pillow decodes through libwebp, which upsamples chroma
// with its own 9-3-3-1 filter and converts with fixed-point BT.601
// (src/dsp/upsampling.c and yuv.h in libwebp 1.2). webpToNRGBA redoes that,
// so a WebP upload reaches the model with the pixels the original code saw.

// webpToNRGBA converts a decoded lossy WebP to straight RGBA like libwebp's
// MODE_RGBA output; alpha, if any, is kept as decoded.
func webpToNRGBA(ycc *image.YCbCr, alpha []uint8, alphaStride int) *image.NRGBA {
	b := ycc.Bounds()
	w, h := b.Dx(), b.Dy()
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	cw, ch := (w+1)/2, (h+1)/2
	origin := ycc.COffset(b.Min.X, b.Min.Y)
	uRow := func(k int) []uint8 { return ycc.Cb[origin+k*ycc.CStride:][:cw] }
	vRow := func(k int) []uint8 { return ycc.Cr[origin+k*ycc.CStride:][:cw] }
	u := make([]uint8, w)
	v := make([]uint8, w)
	for y := 0; y < h; y++ {
		// Output row y leans on chroma row y/2 and on its neighbour above
		// (even y) or below (odd y); libwebp mirrors at the edges, which for
		// the first and an even height's last row means pairing a chroma row
		// with itself.
		near, far := y/2, y/2+1
		if y%2 == 0 {
			far = y/2 - 1
		}
		far = min(max(far, 0), ch-1)
		webpUpsampleRow(u, uRow(near), uRow(far), w)
		webpUpsampleRow(v, vRow(near), vRow(far), w)
		yrow := ycc.Y[ycc.YOffset(b.Min.X, b.Min.Y+y):][:w]
		o := out.Pix[y*out.Stride:][:4*w]
		for x := 0; x < w; x++ {
			Y, U, V := int(yrow[x]), int(u[x]), int(v[x])
			o[4*x] = webpClip8(mulHi(Y, 19077) + mulHi(V, 26149) - 14234)
			o[4*x+1] = webpClip8(mulHi(Y, 19077) - mulHi(U, 6419) - mulHi(V, 13320) + 8708)
			o[4*x+2] = webpClip8(mulHi(Y, 19077) + mulHi(U, 33050) - 17685)
			o[4*x+3] = 255
			if alpha != nil {
				o[4*x+3] = alpha[y*alphaStride+x]
			}
		}
	}
	return out
}

// webpUpsampleRow fills dst (w samples) for an output row whose nearest
// chroma row is near and next nearest is far, with libwebp's exact integer
// steps: ((a+3b+3c+d+8)>>3 + a)>>1 for the 9-3-3-1 interior (a nearest in
// both directions), and (3a+c+2)>>2 in the first and, for even widths, last
// columns, where only the vertical neighbour counts.
func webpUpsampleRow(dst, near, far []uint8, w int) {
	edge := func(k int) uint8 { return uint8((3*int(near[k]) + int(far[k]) + 2) >> 2) }
	dst[0] = edge(0)
	for x := 1; x <= (w-1)/2; x++ {
		// a/b: nearest row at chroma columns x-1 and x; c/d: far row.
		a, b := int(near[x-1]), int(near[x])
		c, d := int(far[x-1]), int(far[x])
		avg := a + b + c + d + 8
		diagNearLeftFarRight := (avg + 2*(a+d)) >> 3 // leans to a and d
		diagNearRightFarLeft := (avg + 2*(b+c)) >> 3 // leans to b and c
		dst[2*x-1] = uint8((diagNearRightFarLeft + a) >> 1)
		dst[2*x] = uint8((diagNearLeftFarRight + b) >> 1)
	}
	if w%2 == 0 {
		dst[w-1] = edge(w/2 - 1)
	}
}

func mulHi(v, coeff int) int { return (v * coeff) >> 8 }

// webpClip8 descales libwebp's 6-bit fixed point and clamps (VP8Clip8).
func webpClip8(v int) uint8 {
	if v&^(256<<6-1) == 0 {
		return uint8(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}
