package explain

import (
	"image"
	"image/color"
	"math"

	"vitlens/vit"
)

// Rendering of maps as the original's Vis.mask does (spec §3.9 "Display"):
// min-max scale the map, reshape it to the patch grid, upsample bilinearly
// to the picture size, colour it with JET and add it to the min-max-scaled
// input, then divide by the maximum. The colours are RGB (blue = low,
// red = high). The original adds OpenCV's BGR heat map to the RGB image and
// then converts the sum with COLOR_RGB2BGR: that swap makes its heat-map
// colours right and its image red-blue swapped. We draw both in RGB.

// MinMax scales v to [0, 1]; a constant map becomes all zeros.
func MinMax(v []float32) []float32 {
	out := make([]float32, len(v))
	if len(v) == 0 {
		return out
	}
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	if hi > lo {
		for i, x := range v {
			out[i] = (x - lo) / (hi - lo)
		}
	}
	return out
}

// Upsample resizes a grid×grid map to size×size with bilinear
// interpolation at pixel centres (OpenCV INTER_LINEAR, torch
// align_corners=False), clamping at the borders.
func Upsample(v []float32, grid, size int) []float32 {
	out := make([]float32, size*size)
	scale := float64(grid) / float64(size)
	coord := func(i int) (int, int, float64) {
		s := (float64(i)+0.5)*scale - 0.5
		s = math.Max(s, 0)
		i0 := min(int(s), grid-1)
		i1 := min(i0+1, grid-1)
		return i0, i1, s - float64(i0)
	}
	for y := 0; y < size; y++ {
		y0, y1, fy := coord(y)
		for x := 0; x < size; x++ {
			x0, x1, fx := coord(x)
			top := float64(v[y0*grid+x0])*(1-fx) + float64(v[y0*grid+x1])*fx
			bot := float64(v[y1*grid+x0])*(1-fx) + float64(v[y1*grid+x1])*fx
			out[y*size+x] = float32(top*(1-fy) + bot*fy)
		}
	}
	return out
}

// Jet is the JET colormap at t ∈ [0, 1] as RGB in [0, 1].
func Jet(t float64) (r, g, b float64) {
	c := func(v float64) float64 { return math.Min(1, math.Max(0, v)) }
	return c(math.Min(4*t-1.5, -4*t+4.5)), c(math.Min(4*t-0.5, -4*t+3.5)), c(math.Min(4*t+0.5, -4*t+2.5))
}

// Picture renders a preprocessed image (C×S×S, normalised) as size×size
// RGB, min-max scaled over all channels as the original does before
// overlaying (the normalisation constants are not needed).
func Picture(pixels *vit.Tensor, size int) *image.RGBA {
	rgb := pictureRGB(pixels, size)
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for i := 0; i < size*size; i++ {
		img.SetRGBA(i%size, i/size, color.RGBA{u8(rgb[0][i]), u8(rgb[1][i]), u8(rgb[2][i]), 255})
	}
	return img
}

// pictureRGB returns three size×size planes in [0, 1].
func pictureRGB(pixels *vit.Tensor, size int) [3][]float32 {
	ch, s := pixels.Shape[0], pixels.Shape[len(pixels.Shape)-1]
	scaled := MinMax(pixels.Data)
	var out [3][]float32
	for c := range 3 {
		src := scaled[min(c, ch-1)*s*s : (min(c, ch-1)+1)*s*s]
		out[c] = Upsample(src, s, size)
	}
	return out
}

// Overlay draws a map (one value per patch, grid×grid) over the image.
func Overlay(pixels *vit.Tensor, heat []float32, grid, size int) *image.RGBA {
	rgb := pictureRGB(pixels, size)
	h := Upsample(MinMax(heat), grid, size)
	sum := make([][3]float64, size*size)
	var peak float64
	for i, v := range h {
		r, g, b := Jet(float64(v))
		sum[i] = [3]float64{r + float64(rgb[0][i]), g + float64(rgb[1][i]), b + float64(rgb[2][i])}
		peak = math.Max(peak, math.Max(sum[i][0], math.Max(sum[i][1], sum[i][2])))
	}
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for i, s := range sum {
		img.SetRGBA(i%size, i/size, color.RGBA{u8(float32(s[0] / peak)), u8(float32(s[1] / peak)), u8(float32(s[2] / peak)), 255})
	}
	return img
}

func u8(v float32) uint8 {
	return uint8(math.Round(float64(min(1, max(0, v))) * 255))
}
