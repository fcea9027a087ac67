package dataset

import (
	"image"
	"image/color"
	"math"

	"vitlens/vit/preprocess"
)

// MaskPatchLabels turns an ImageNet-S segmentation mask into grid×grid
// row-major token labels, as Vis.get_segmentation does (spec §1.3): the
// per-pixel category is R + 256·G, a token is 1 when the pixel sampled for it
// has category id and 0 otherwise (background, ignore = 1000 and other
// categories are all context).
//
// The sampling is cv2.resize(mask, (grid, grid), INTER_NEAREST), which reads
// one pixel per cell, never a majority: see nearestSource.
func MaskPatchLabels(mask image.Image, id, grid int) []uint8 {
	b := mask.Bounds()
	w, h := b.Dx(), b.Dy()
	cols := make([]int, grid)
	rows := make([]int, grid)
	for i := range grid {
		cols[i] = nearestSource(i, w, grid)
		rows[i] = nearestSource(i, h, grid)
	}
	return sampleMask(mask, id, rows, cols)
}

// MaskPatchLabelsIn is MaskPatchLabels for a preset that crops (deit,
// miil): the mask follows the image, resized to win.W×win.H with PIL's
// NEAREST (a label is never blended) and cut to the S×S window Apply keeps,
// and only that window is sampled to the grid, with the original's
// INTER_NEAREST. The original samples the full mask (spec A18), so its labels
// describe pixels the model never saw.
func MaskPatchLabelsIn(mask image.Image, id, grid int, win preprocess.Window) []uint8 {
	b := mask.Bounds()
	cols := make([]int, grid)
	rows := make([]int, grid)
	xs := pilNearest(b.Dx(), win.W)
	ys := pilNearest(b.Dy(), win.H)
	for i := range grid {
		cols[i] = xs[min(win.Left+nearestSource(i, win.S, grid), win.W-1)]
		rows[i] = ys[min(win.Top+nearestSource(i, win.S, grid), win.H-1)]
	}
	return sampleMask(mask, id, rows, cols)
}

// sampleMask labels grid cell (i, j) by the mask pixel (cols[j], rows[i]),
// in mask-relative coordinates.
func sampleMask(mask image.Image, id int, rows, cols []int) []uint8 {
	b := mask.Bounds()
	grid := len(cols)
	out := make([]uint8, grid*grid)
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return out
	}
	for i, y := range rows {
		for j, x := range cols {
			if maskID(mask, b.Min.X+x, b.Min.Y+y) == id {
				out[i*grid+j] = 1
			}
		}
	}
	return out
}

// pilNearest returns, for each of dst output pixels, the source pixel that
// Pillow's Image.resize with NEAREST reads (ImagingScaleAffine): the pixel
// centre mapped back, xo = (x + 0.5)·src/dst, accumulated in double
// precision as Pillow does and truncated, clamped to the image.
func pilNearest(src, dst int) []int {
	out := make([]int, max(dst, 0))
	scale := float64(src) / float64(dst)
	xo := scale * 0.5
	for x := range out {
		out[x] = min(max(int(xo), 0), src-1)
		xo += scale
	}
	return out
}

// nearestSource returns the source pixel OpenCV's INTER_NEAREST reads for
// destination pixel d when resizing src pixels to dst (resizeNN in
// imgproc/src/resize.cpp): min(floor(d * (1/(dst/src))), src-1), in double
// precision. The reciprocal of the rounded ratio is not src/dst exactly, and
// it matters: for src=58, dst=14, d=7 OpenCV reads pixel 28, not 7*58/14 = 29.
// Checked against cv2.resize of Debian's python3-opencv 4.6.0 for every
// src in 1..1199 at dst 7 and 14.
func nearestSource(d, src, dst int) int {
	fx := float64(dst) / float64(src)
	ifx := 1. / fx
	s := int(math.Floor(float64(d) * ifx))
	return min(s, src-1)
}

// maskID decodes the category id of one mask pixel. PIL's convert('RGB')
// drops alpha without un-premultiplying, so opaque pixels are what matter;
// NRGBA gives the stored 8-bit channels for every decoded PNG type (and the
// high byte of 16-bit ones, as PIL does).
func maskID(m image.Image, x, y int) int {
	c := color.NRGBAModel.Convert(m.At(x, y)).(color.NRGBA)
	return int(c.R) + 256*int(c.G)
}
