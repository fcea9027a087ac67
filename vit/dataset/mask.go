package dataset

import (
	"image"
	"image/color"
	"math"
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
	out := make([]uint8, grid*grid)
	if w <= 0 || h <= 0 {
		return out
	}
	cols := make([]int, grid)
	for j := range cols {
		cols[j] = b.Min.X + nearestSource(j, w, grid)
	}
	for i := range grid {
		y := b.Min.Y + nearestSource(i, h, grid)
		for j, x := range cols {
			if maskID(mask, x, y) == id {
				out[i*grid+j] = 1
			}
		}
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
