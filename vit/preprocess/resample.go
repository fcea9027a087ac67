package preprocess

import "math"

// This file reproduces Pillow's ImagingResample (libImaging/Resample.c, as in
// Pillow 9.x) for 8-bit images: Image.resize with BILINEAR or BICUBIC, which
// both torchvision's Resize on PIL images and the Hugging Face image
// processors call. Matching it bit for bit matters because the original
// results were computed on exactly these pixels; a textbook bilinear resize
// differs by many 8-bit levels when downscaling, since Pillow widens the
// filter by the scale factor (antialiasing).

// raster is an 8-bit image with c interleaved channels (1 for "L", 3 for
// "RGB"), the layout Pillow resamples.
type raster struct {
	w, h, c int
	pix     []uint8
}

func newRaster(w, h, c int) *raster {
	return &raster{w: w, h: h, c: c, pix: make([]uint8, w*h*c)}
}

// Filter is a Pillow resampling filter.
type Filter int

const (
	Bilinear Filter = iota // PIL.Image.BILINEAR (triangle, support 1)
	Bicubic                // PIL.Image.BICUBIC (Keys cubic with a = -0.5, support 2)
)

func (f Filter) String() string {
	switch f {
	case Bilinear:
		return "bilinear"
	case Bicubic:
		return "bicubic"
	}
	return "unknown filter"
}

func (f Filter) support() float64 {
	if f == Bicubic {
		return 2
	}
	return 1
}

// weight evaluates the filter kernel. The explicit float64 conversions around
// products stop the Go compiler from fusing them into FMA instructions (it
// may on arm64), which would round differently from Pillow's x86-64 build.
func (f Filter) weight(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if f == Bicubic {
		const a = -0.5
		if x < 1 {
			return float64(float64(float64(float64((a+2)*x)-(a+3))*x)*x) + 1
		}
		if x < 2 {
			return float64(float64(float64(float64(float64(x-5)*x)+8)*x)-4) * a
		}
		return 0
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

// precisionBits is Pillow's PRECISION_BITS: coefficients are fixed point
// with 22 fractional bits, leaving room for 8-bit values, negative lobes and
// sums slightly above one in a 32-bit int.
const precisionBits = 32 - 8 - 2

// coefficients mirrors precompute_coeffs followed by normalize_coeffs_8bpc:
// for each output position it returns the first input index, the number of
// taps, and the fixed-point weights (ksize slots per output position).
func coefficients(inSize, outSize int, f Filter) (first, count []int, k []int32, ksize int) {
	first, count, w, ksize := filterWeights(inSize, outSize, f)
	k = make([]int32, len(w))
	for i, v := range w {
		// Round half away from zero, as normalize_coeffs_8bpc does.
		scaled := float64(v * (1 << precisionBits))
		if v < 0 {
			k[i] = int32(-0.5 + scaled)
		} else {
			k[i] = int32(0.5 + scaled)
		}
	}
	return first, count, k, ksize
}

// filterWeights mirrors precompute_coeffs: for each output position the
// first input index, the number of taps, and the normalised weights (ksize
// slots per output position). PyTorch's antialiased interpolate computes the
// same weights (_compute_weights_aa).
func filterWeights(inSize, outSize int, f Filter) (first, count []int, k []float64, ksize int) {
	// Pillow passes the box as C floats; for any realistic size they convert
	// exactly, so float64 arithmetic below equals Pillow's double arithmetic.
	scale := float64(inSize) / float64(outSize)
	filterScale := scale
	if filterScale < 1 {
		filterScale = 1
	}
	support := f.support() * filterScale
	ksize = int(math.Ceil(support))*2 + 1
	first = make([]int, outSize)
	count = make([]int, outSize)
	k = make([]float64, outSize*ksize)
	ss := 1 / filterScale
	for xx := 0; xx < outSize; xx++ {
		center := float64(float64(xx)+0.5) * scale
		// C's (int) truncates toward zero, as Go's conversion does.
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		n := xmax - xmin
		w := k[xx*ksize : xx*ksize+n]
		sum := 0.0
		for x := range w {
			w[x] = f.weight(float64(float64(x+xmin)-center+0.5) * ss)
			sum += w[x]
		}
		if sum != 0 {
			for x := range w {
				w[x] /= sum
			}
		}
		first[xx], count[xx] = xmin, n
	}
	return first, count, k, ksize
}

// ResizeGrid resamples a g0×g0 grid of d-vectors (row-major, each vector
// contiguous) to g1×g1 as PyTorch's F.interpolate(mode="bicubic",
// antialias=True, align_corners=False) does, which is how timm's
// resample_abs_pos_embed resizes position embeddings: Pillow's BICUBIC
// kernel (widened when shrinking), separable, rows first, in float.
func ResizeGrid(src []float32, g0, g1, d int) []float32 {
	first, count, w, ksize := filterWeights(g0, g1, Bicubic)
	// Horizontal pass: g0 rows × g1 columns.
	tmp := make([]float64, g0*g1*d)
	for y := 0; y < g0; y++ {
		for x := 0; x < g1; x++ {
			out := tmp[(y*g1+x)*d : (y*g1+x+1)*d]
			for t := 0; t < count[x]; t++ {
				wt := w[x*ksize+t]
				in := src[(y*g0+first[x]+t)*d : (y*g0+first[x]+t+1)*d]
				for i, v := range in {
					out[i] += wt * float64(v)
				}
			}
		}
	}
	// Vertical pass: g1 × g1.
	dst := make([]float32, g1*g1*d)
	acc := make([]float64, d)
	for y := 0; y < g1; y++ {
		for x := 0; x < g1; x++ {
			clear(acc)
			for t := 0; t < count[y]; t++ {
				wt := w[y*ksize+t]
				in := tmp[((first[y]+t)*g1+x)*d : ((first[y]+t)*g1+x+1)*d]
				for i, v := range in {
					acc[i] += wt * v
				}
			}
			for i, v := range acc {
				dst[(y*g1+x)*d+i] = float32(v)
			}
		}
	}
	return dst
}

// clip8 turns a fixed-point accumulator into an 8-bit value the way Pillow's
// clip8 lookup table does: arithmetic shift, then clamp.
func clip8(ss int) uint8 {
	v := ss >> precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// resample is Image.resize((w, h), filter) for an 8-bit raster: a horizontal
// pass into an 8-bit intermediate (only over the rows the vertical pass will
// read), then a vertical pass, each skipped when its size is unchanged.
func resample(src *raster, w, h int, f Filter) *raster {
	if w == src.w && h == src.h {
		out := newRaster(w, h, src.c)
		copy(out.pix, src.pix)
		return out
	}
	yFirst, yCount, yk, yksize := coefficients(src.h, h, f)
	cur := src
	rowOffset := 0
	if w != src.w {
		// Rows outside [top, bottom) carry zero weight for every output row.
		top := yFirst[0]
		bottom := yFirst[h-1] + yCount[h-1]
		cur = horizontalPass(src, top, bottom, w, f)
		rowOffset = top
	}
	if h == src.h {
		return cur
	}
	return verticalPass(cur, rowOffset, yFirst, yCount, yk, yksize)
}

func horizontalPass(src *raster, top, bottom, w int, f Filter) *raster {
	first, count, k, ksize := coefficients(src.w, w, f)
	c := src.c
	out := newRaster(w, bottom-top, c)
	const half = 1 << (precisionBits - 1)
	for y := top; y < bottom; y++ {
		in := src.pix[y*src.w*c : (y+1)*src.w*c]
		o := out.pix[(y-top)*w*c : (y-top+1)*w*c]
		for xx := 0; xx < w; xx++ {
			kk := k[xx*ksize : xx*ksize+count[xx]]
			// The one- and three-channel loops are spelled out: this pass
			// touches every source pixel and dominates the run time.
			if c == 3 {
				p := in[first[xx]*3 : (first[xx]+len(kk))*3]
				r, g, b := half, half, half
				for x, wt := range kk {
					r += int(p[3*x]) * int(wt)
					g += int(p[3*x+1]) * int(wt)
					b += int(p[3*x+2]) * int(wt)
				}
				o[3*xx], o[3*xx+1], o[3*xx+2] = clip8(r), clip8(g), clip8(b)
				continue
			}
			p := in[first[xx]*c : (first[xx]+len(kk))*c]
			for ch := 0; ch < c; ch++ {
				acc := half
				for x, wt := range kk {
					acc += int(p[x*c+ch]) * int(wt)
				}
				o[xx*c+ch] = clip8(acc)
			}
		}
	}
	return out
}

func verticalPass(src *raster, rowOffset int, first, count []int, k []int32, ksize int) *raster {
	h := len(first)
	c := src.c
	stride := src.w * c
	out := newRaster(src.w, h, c)
	acc := make([]int, stride)
	for yy := 0; yy < h; yy++ {
		for i := range acc {
			acc[i] = 1 << (precisionBits - 1)
		}
		kk := k[yy*ksize : yy*ksize+count[yy]]
		for y, wt := range kk {
			row := first[yy] - rowOffset + y
			in := src.pix[row*stride : (row+1)*stride]
			for i, p := range in {
				acc[i] += int(p) * int(wt)
			}
		}
		o := out.pix[yy*stride : (yy+1)*stride]
		for i, a := range acc {
			o[i] = clip8(a)
		}
	}
	return out
}
