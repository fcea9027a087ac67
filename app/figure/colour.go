package figure

import (
	"fmt"
	"image/color"
	"math"
)

// viridis anchors (matplotlib's map at 0, 1/8, …, 1), interpolated linearly:
// perceptually even and readable for colour-blind people.
var viridis = [9][3]uint8{
	{68, 1, 84}, {71, 44, 122}, {59, 81, 139}, {44, 113, 142}, {33, 144, 141},
	{39, 173, 129}, {92, 200, 99}, {170, 220, 50}, {253, 231, 37},
}

// Viridis maps t in [0, 1] to a colour; NaN gives grey.
func Viridis(t float64) color.NRGBA {
	if math.IsNaN(t) {
		return color.NRGBA{148, 163, 184, 255}
	}
	t = min(max(t, 0), 1) * 8
	i := min(int(t), 7)
	f := t - float64(i)
	var c [3]uint8
	for k := range c {
		a, b := float64(viridis[i][k]), float64(viridis[i+1][k])
		c[k] = uint8(a + (b-a)*f + 0.5)
	}
	return color.NRGBA{c[0], c[1], c[2], 255}
}

// Hex writes a colour as #rrggbb.
func Hex(c color.NRGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

// RankScale maps a 0-based rank among classes to [0, 1], 1 for top-1, on a
// log scale so that ranks 1-10 stay distinguishable among 1000 classes.
func RankScale(rank, classes int) float64 {
	if classes <= 1 {
		return 1
	}
	return 1 - math.Log1p(float64(rank))/math.Log(float64(classes))
}

// RankColour is the colour of a rank.
func RankColour(rank, classes int) string { return Hex(Viridis(RankScale(rank, classes))) }

// legend draws the rank colour scale as a gradient bar with end labels.
func (d *doc) rankLegend(x, y, w float64, classes int, id string) {
	d.raw(`<defs><linearGradient id="%s">`, id)
	for i := 0; i <= 8; i++ {
		d.raw(`<stop offset="%s" stop-color="%s"/>`, num(float64(i)/8), Hex(Viridis(1-float64(i)/8)))
	}
	d.raw(`</linearGradient></defs>`)
	d.raw(`<rect x="%s" y="%s" width="%s" height="8" rx="2" fill="url(#%s)"/>`, num(x), num(y), num(w), id)
	d.text(x, y+20, 10, Muted, "start", "rank 1")
	mid := int(math.Round(math.Sqrt(float64(classes)))) // log-scale midpoint
	if mid > 1 && mid < classes {
		d.text(x+w/2, y+20, 10, Muted, "middle", fmt.Sprintf("%d", mid))
	}
	d.text(x+w, y+20, 10, Muted, "end", fmt.Sprintf("%d (last)", classes))
}
