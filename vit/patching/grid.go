package patching

import (
	"image"
	"image/color"
	"math"
)

// GridImage draws a rows×cols table of signed values as a heat-map, each
// value a cell×cell square: red for positive, blue for negative, white for
// zero, on a scale symmetric around zero (the largest |value| is full
// colour), so the sign of a patching effect or a logit contribution reads
// at a glance. NaNs are grey.
func GridImage(values [][]float64, cell int) *image.RGBA {
	rows, cols := len(values), 0
	scale := 0.0
	for _, r := range values {
		cols = max(cols, len(r))
		for _, v := range r {
			if !math.IsNaN(v) {
				scale = math.Max(scale, math.Abs(v))
			}
		}
	}
	img := image.NewRGBA(image.Rect(0, 0, cols*cell, rows*cell))
	for i, r := range values {
		for j, v := range r {
			c := Diverging(v, scale)
			for y := i * cell; y < (i+1)*cell; y++ {
				for x := j * cell; x < (j+1)*cell; x++ {
					img.SetRGBA(x, y, c)
				}
			}
		}
	}
	return img
}

// Diverging maps v in [-scale, scale] to blue-white-red (grey for NaN):
// the colour of GridImage's cells, also the web app's.
func Diverging(v, scale float64) color.RGBA {
	if math.IsNaN(v) {
		return color.RGBA{160, 160, 160, 255}
	}
	t := 0.0
	if scale > 0 {
		t = math.Max(-1, math.Min(1, v/scale))
	}
	fade := uint8(math.Round(255 * (1 - math.Abs(t))))
	if t >= 0 {
		return color.RGBA{255, fade, fade, 255}
	}
	return color.RGBA{fade, fade, 255, 255}
}
