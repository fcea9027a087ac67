package figure

import (
	"fmt"
	"math"

	"vitlens/vit/patching"
)

// SignedGrid draws signed values (rows × columns, e.g. a logit's share per
// block and head) blue-white-red on a scale symmetric around zero, the
// colours of the CLI's heat-maps; each cell carries its row, column and
// value as data attributes and a tooltip.
type SignedGrid struct {
	Title   string
	Values  [][]float64
	RowName string // "block"
	ColName string // "head"
	Unit    string // what a value is, for the tooltip
	// ColLabels name the columns in tooltips ("[CLS]", "patch (0, 1)");
	// nil: ColName and the index.
	ColLabels []string
	// Legend replaces "(red adds, blue takes away)" after ColName.
	Legend string
	// Cursor is the keyboard cursor's {row, column}; nil when the figure
	// does not have the keyboard focus.
	Cursor *[2]int
}

// Tip is the tooltip of cell (i, j), read out for the keyboard cursor.
func (g SignedGrid) Tip(i, j int) string {
	if i < 0 || i >= len(g.Values) || j < 0 || j >= len(g.Values[i]) {
		return ""
	}
	return fmt.Sprintf("%s %d · %s: %+.4f %s", g.RowName, i, g.colLabel(j), g.Values[i][j], g.Unit)
}

func (g SignedGrid) SVG() string {
	rows := len(g.Values)
	cols := 0
	scale := 0.0
	for _, r := range g.Values {
		cols = max(cols, len(r))
		for _, v := range r {
			if !math.IsNaN(v) {
				scale = math.Max(scale, math.Abs(v))
			}
		}
	}
	cw := min(max(math.Floor(600/float64(max(cols, 1))), 14), 56)
	ch := min(max(math.Floor(260/float64(max(rows, 1))), 12), 28)
	const left, top = 58.0, 30.0
	d := newDoc(max(left+cw*float64(cols)+16, 300), top+ch*float64(rows)+34, g.Title)
	d.text(8, 18, 12, Ink, "start", g.Title, `font-weight="600"`)
	for i, r := range g.Values {
		y := top + ch*float64(i)
		d.text(left-8, y+ch/2+3.5, 10, Muted, "end", fmt.Sprintf("%s %d", g.RowName, i))
		for j, v := range r {
			c := patching.Diverging(v, scale)
			d.raw(`<rect x="%s" y="%s" width="%s" height="%s" fill="#%02x%02x%02x" data-row="%d" data-col="%d" data-value="%s">%s</rect>`,
				num(left+cw*float64(j)), num(y), num(cw), num(ch), c.R, c.G, c.B, i, j, fmt.Sprint(v),
				title(g.Tip(i, j)))
		}
	}
	if c := g.Cursor; c != nil && c[0] >= 0 && c[0] < rows && c[1] >= 0 && c[1] < cols {
		d.cursor(left+cw*float64(c[1]), top+ch*float64(c[0]), cw, ch)
	}
	axisY := top + ch*float64(rows)
	for j := 0; j < cols; j++ {
		d.text(left+cw*(float64(j)+0.5), axisY+13, 9.5, Muted, "middle", fmt.Sprint(j))
	}
	legend := g.Legend
	if legend == "" {
		legend = "red adds, blue takes away"
	}
	d.text(left, axisY+27, 10.5, Muted, "start", g.ColName+" ("+legend+")")
	return d.String()
}

func (g SignedGrid) colLabel(j int) string {
	if j < len(g.ColLabels) {
		return g.ColLabels[j]
	}
	return fmt.Sprintf("%s %d", g.ColName, j)
}
