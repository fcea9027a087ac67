package figure

import (
	"fmt"
	"math"
)

// Series is one line of the identifiability curve.
type Series struct {
	Name   string
	Values []float64 // per block; NaN leaves a gap
	Colour string
	Dashed bool
}

// Curve draws identifiability (1 − rank/C) against blocks, with the chance
// level 0.5 dashed, as the paper's evolution plots do.
func Curve(titleText string, series []Series) string {
	// Legend entries are laid out first: two rows when they do not fit one.
	// The right margin holds the "chance" label, clear of every curve.
	const w = 470.0
	const left, right, top = 44.0, 46.0, 30.0
	rows, lx := 1, left
	for _, s := range series {
		step := 30 + 6.2*float64(len(s.Name))
		if lx+step > w-right && lx > left {
			rows++
			lx = left
		}
		lx += step
	}
	bottom := 40 + 18*float64(rows)
	h := 212 + bottom
	pw, ph := w-left-right, h-top-bottom
	depth := 0
	for _, s := range series {
		depth = max(depth, len(s.Values))
	}
	d := newDoc(w, h, titleText)
	d.text(left, 18, 12, Ink, "start", titleText, `font-weight="600"`)
	y := func(v float64) float64 { return top + ph*(1-v) }
	x := func(b int) float64 {
		if depth <= 1 {
			return left + pw/2
		}
		return left + pw*float64(b)/float64(depth-1)
	}
	for _, v := range []float64{0, 0.25, 0.5, 0.75, 1} {
		d.line(left, y(v), left+pw, y(v), Grid, 1)
		d.text(left-6, y(v)+3.5, 10, Muted, "end", fmt.Sprintf("%.2g", v))
	}
	d.line(left, y(0.5), left+pw, y(0.5), Muted, 1, `stroke-dasharray="5 4"`)
	d.text(left+pw+4, y(0.5)+3.5, 9.5, Muted, "start", "chance")
	step := max(1, (depth+11)/12)
	for b := 0; b < depth; b += step {
		d.text(x(b), top+ph+15, 10, Muted, "middle", fmt.Sprint(b+1))
	}
	d.text(left+pw/2, top+ph+30, 10.5, Muted, "middle", "block")
	for _, s := range series {
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6 4" stroke-opacity="0.7"`
		}
		var path []string
		pen := "M"
		for b, v := range s.Values {
			if math.IsNaN(v) {
				pen = "M"
				continue
			}
			path = append(path, fmt.Sprintf("%s%s %s", pen, num(x(b)), num(y(v))))
			pen = "L"
		}
		if len(path) > 0 {
			d.raw(`<path d="%s" fill="none" stroke="%s" stroke-width="2.2" stroke-linejoin="round"%s/>`,
				joinPath(path), s.Colour, dash)
		}
		for b, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			d.raw(`<circle cx="%s" cy="%s" r="3" fill="%s"%s>%s</circle>`, num(x(b)), num(y(v)), s.Colour,
				dash, title(fmt.Sprintf("%s, block %d: %.3f", s.Name, b+1, v)))
		}
	}
	// Legend below the axis, left to right.
	lx, ly := left, top+ph+44
	for _, s := range series {
		dash := ""
		if s.Dashed {
			dash = `stroke-dasharray="6 4"`
		}
		step := 30 + 6.2*float64(len(s.Name))
		if lx+step > w-right && lx > left {
			lx, ly = left, ly+18
		}
		d.line(lx, ly, lx+18, ly, s.Colour, 2.2, dash)
		d.text(lx+23, ly+3.5, 10.5, Ink, "start", s.Name)
		lx += step
	}
	return d.String()
}

func joinPath(p []string) string {
	out := ""
	for i, s := range p {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out
}
