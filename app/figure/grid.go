package figure

import (
	"fmt"
	"image"
	"math"
	"slices"
	"strings"
)

// Heatmap is the blocks × tokens map of the target class's rank.
type Heatmap struct {
	Title string
	// Ranks[block][token] is the 0-based rank, -1 for a dropped token.
	Ranks   [][]int32
	Labels  []string // per token
	Classes int
	// SelBlock and SelToken outline the selected row and cell (-1: none).
	SelBlock, SelToken int
	// Cursor is the keyboard cursor's {block, token}; nil when the figure
	// does not have the focus.
	Cursor *[2]int
	// Width is the room for the cells, 860 px when 0 (two heat-maps side
	// by side get less).
	Width float64
}

// SVG draws the heat-map.
func (hm Heatmap) SVG() string {
	depth := len(hm.Ranks)
	n := 0
	if depth > 0 {
		n = len(hm.Ranks[0])
	}
	room := hm.Width
	if room == 0 {
		room = 860
	}
	cw := min(max(math.Floor(room/float64(max(n, 1))), 3), 48)
	ch := min(max(math.Floor(230/float64(max(depth, 1))), 12), 26)
	const left, top = 58.0, 30.0
	w := left + cw*float64(n) + 16
	h := top + ch*float64(depth) + 62
	d := newDoc(max(w, 340), h, hm.Title)
	d.text(8, 18, 12, Ink, "start", hm.Title, `font-weight="600"`)
	for b := 0; b < depth; b++ {
		y := top + ch*float64(b)
		d.text(left-8, y+ch/2+3.5, 10, Muted, "end", fmt.Sprintf("block %d", b+1))
	}
	// The cells are one image, a pixel per cell drawn at the cell's size
	// without smoothing: a model of 197 tokens has 2364 cells, which as
	// SVG elements with their tooltips were most of the page's render. The
	// page finds the cell under the pointer from data-rows and data-cols
	// and writes its Tip into the image's title.
	if depth > 0 && n > 0 {
		d.raw(`<image class="vl-cells" x="%s" y="%s" width="%s" height="%s" preserveAspectRatio="none" image-rendering="pixelated" data-rows="%d" data-cols="%d" href="%s">%s</image>`,
			num(left), num(top), num(cw*float64(n)), num(ch*float64(depth)), depth, n, PNGDataURI(hm.Cells()),
			title("block × token: point at a cell for its rank"))
	}
	if hm.SelBlock >= 0 && hm.SelBlock < depth {
		d.raw(`<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="%s" stroke-width="1.5" pointer-events="none"/>`,
			num(left-1), num(top+ch*float64(hm.SelBlock)), num(cw*float64(n)+2), num(ch), Ink)
	}
	if hm.SelToken >= 0 && hm.SelToken < n {
		d.raw(`<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="%s" stroke-width="2" pointer-events="none"/>`,
			num(left+cw*float64(hm.SelToken)), num(top-1), num(cw), num(ch*float64(depth)+2), Selected)
	}
	if c := hm.Cursor; c != nil && c[0] >= 0 && c[0] < depth && c[1] >= 0 && c[1] < n {
		d.cursor(left+cw*float64(c[1]), top+ch*float64(c[0]), cw, ch)
	}
	// Token axis: label every k-th token so labels do not overlap.
	axisY := top + ch*float64(depth)
	k := max(1, int(math.Ceil(34/cw)))
	for t := 0; t < n; t += k {
		d.text(left+cw*(float64(t)+0.5), axisY+13, 9.5, Muted, "middle", shortLabel(hm.Labels[t], t))
	}
	d.text(left, axisY+27, 10.5, Muted, "start", "token ("+prefixCaption(hm.Labels)+"then patches row by row)")
	d.rankLegend(left, axisY+36, min(220, max(cw*float64(n), 160)), hm.Classes, "rankscale-heat")
	return d.String()
}

// Cells is the heat-map's cells as an image, a pixel per cell: token t of
// block b at (t, b), in its rank's colour, Dropped's for a dropped token.
func (hm Heatmap) Cells() *image.NRGBA {
	depth := len(hm.Ranks)
	n := 0
	if depth > 0 {
		n = len(hm.Ranks[0])
	}
	img := image.NewNRGBA(image.Rect(0, 0, n, depth))
	dropped := Viridis(math.NaN())
	for b, row := range hm.Ranks {
		for t, r := range row {
			c := dropped
			if r >= 0 {
				c = Viridis(RankScale(int(r), hm.Classes))
			}
			img.SetNRGBA(t, b, c)
		}
	}
	return img
}

// Tip describes the cell of block b (0-based) and token t in words: the
// figure's tooltip, and what the page reads out for the keyboard cursor.
func (hm Heatmap) Tip(b, t int) string {
	if r := hm.Ranks[b][t]; r >= 0 {
		return fmt.Sprintf("block %d · %s: rank %d of %d", b+1, hm.Labels[t], r+1, hm.Classes)
	}
	return fmt.Sprintf("block %d · %s: dropped", b+1, hm.Labels[t])
}

func shortLabel(label string, t int) string {
	switch {
	case label == "[CLS]":
		return "CLS"
	case label == "distillation token":
		return "DIST"
	case strings.HasPrefix(label, "register "):
		return "R" + strings.TrimPrefix(label, "register ")
	}
	return fmt.Sprint(t)
}

// prefixCaption names the tokens before the patches, in order, each kind
// once: "[CLS], registers, " (empty without prefix tokens).
func prefixCaption(labels []string) string {
	var kinds []string
	for _, l := range labels {
		kind := l
		switch {
		case strings.HasPrefix(l, "patch"):
			return strings.Join(kinds, "")
		case strings.HasPrefix(l, "register "):
			kind = "registers"
		}
		if !slices.Contains(kinds, kind+", ") {
			kinds = append(kinds, kind+", ")
		}
	}
	return strings.Join(kinds, "")
}

// Overlay is the input image with its patch grid coloured by rank.
type Overlay struct {
	Title, Subtitle string
	Image           string // data URI of the picture the model sees
	Grid            int
	// Patches, row by row: colour ("" = dropped) and tooltip.
	Colours, Titles []string
	FirstToken      int // token index of patch 0 (1 with [CLS])
	Selected        int // patch index outlined, -1 for none
	Size            float64
	// Alpha is the opacity of the colour layer.
	Alpha float64
	// Classes > 0 draws the rank colour scale under the image; LegendID
	// names its gradient, unique on the page.
	Classes  int
	LegendID string
	// Cursor is the keyboard cursor's patch index, -1 for none.
	Cursor int
}

// SVG draws the overlay. Patches carry data-token.
func (o Overlay) SVG() string {
	s := o.Size
	if s == 0 {
		s = 300
	}
	const top = 40.0
	h := s + top
	if o.Classes > 0 {
		h += 40
	}
	d := newDoc(s, h, o.Title)
	d.text(0, 14, 12, Ink, "start", o.Title, `font-weight="600"`)
	d.text(0, 30, 10.5, Muted, "start", o.Subtitle)
	d.raw(`<image x="0" y="%s" width="%s" height="%s" href="%s" preserveAspectRatio="none" image-rendering="pixelated"/>`,
		num(top), num(s), num(s), o.Image)
	g := o.Grid
	cell := s / float64(g)
	for p := 0; p < g*g; p++ {
		x, y := cell*float64(p%g), top+cell*float64(p/g)
		fill, op := o.Colours[p], o.Alpha
		extra := ""
		if fill == "" {
			fill, op = "#0f172a", 0.78
			extra = fmt.Sprintf(`<path d="M%s %sL%s %sM%s %sL%s %s" stroke="%s" stroke-width="1" pointer-events="none"/>`,
				num(x+cell*0.3), num(y+cell*0.3), num(x+cell*0.7), num(y+cell*0.7),
				num(x+cell*0.7), num(y+cell*0.3), num(x+cell*0.3), num(y+cell*0.7), "#e2e8f0")
		}
		d.raw(`<rect x="%s" y="%s" width="%s" height="%s" fill="%s" fill-opacity="%s" stroke="#ffffff" stroke-opacity="0.35" stroke-width="0.5" data-token="%d">%s</rect>%s`,
			num(x), num(y), num(cell), num(cell), fill, num(op), p+o.FirstToken, title(o.Titles[p]), extra)
	}
	if o.Selected >= 0 && o.Selected < g*g {
		x, y := cell*float64(o.Selected%g), top+cell*float64(o.Selected/g)
		d.raw(`<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="%s" stroke-width="2.5" pointer-events="none"/>`,
			num(x+1), num(y+1), num(cell-2), num(cell-2), Selected)
	}
	if o.Cursor >= 0 && o.Cursor < g*g {
		d.cursor(cell*float64(o.Cursor%g), top+cell*float64(o.Cursor/g), cell, cell)
	}
	if o.Classes > 0 {
		d.rankLegend(0, top+s+10, min(s, 240), o.Classes, o.LegendID)
	}
	return d.String()
}

// AttentionMaps shows where one query token attends: a map over the patch
// grid per block (rows) and head (columns), plus the heads' mean.
type AttentionMaps struct {
	Title string
	Grid  int
	// Weights[block][head][patch]; NaN marks a dropped patch.
	Weights [][][]float32
	// CLS[block][head] is the weight on [CLS]; nil without [CLS].
	CLS [][]float32
	// Query is the query's patch index (outlined), -1 for [CLS].
	Query int
	// Cursor is the keyboard cursor's {block, column} (the last column is
	// the mean of the heads); nil when the figure does not have the focus.
	Cursor *[2]int
}

// SVG draws the maps, each scaled to its own maximum.
func (am AttentionMaps) SVG() string {
	depth := len(am.Weights)
	heads := 0
	if depth > 0 {
		heads = len(am.Weights[0])
	}
	cols := heads + 1
	cell := min(max(math.Floor(780/float64(cols)), 34), 52)
	const left, top, gap = 62.0, 44.0, 6.0
	w := left + float64(cols)*(cell+gap) + 8
	h := top + float64(depth)*(cell+gap) + 8
	d := newDoc(w, h, am.Title)
	d.text(8, 18, 12, Ink, "start", am.Title, `font-weight="600"`)
	for c := 0; c < cols; c++ {
		label := fmt.Sprintf("head %d", c+1)
		if c == heads {
			label = "mean"
		}
		d.text(left+float64(c)*(cell+gap)+cell/2, top-8, 10, Muted, "middle", label)
	}
	g := am.Grid
	// Every map is a g×g tile of one picture, each shown through a nested
	// svg's viewBox: one PNG to encode and for the browser to decode, not
	// one per map (a B/16's 156 took 70 ms of the page's thread in
	// WebAssembly, at every analysis and every token chosen).
	sheet := image.NewNRGBA(image.Rect(0, 0, cols*g, depth*g))
	for b := range depth {
		for c := range cols {
			wts, _, _ := am.mapOf(b, c)
			paintWeights(sheet, c*g, b*g, wts, g)
		}
	}
	d.raw(`<defs><image id="%s" width="%d" height="%d" href="%s" image-rendering="pixelated"/></defs>`,
		attentionSheet, cols*g, depth*g, PNGDataURI(sheet))
	for b := 0; b < depth; b++ {
		y := top + float64(b)*(cell+gap)
		d.text(left-8, y+cell/2+3.5, 10, Muted, "end", fmt.Sprintf("block %d", b+1))
		for c := 0; c < cols; c++ {
			x := left + float64(c)*(cell+gap)
			tip := am.Tip(b, c)
			d.raw(`<svg x="%s" y="%s" width="%s" height="%s" viewBox="%d %d %d %d" preserveAspectRatio="none">%s<use href="#%s"/></svg>`,
				num(x), num(y), num(cell), num(cell), c*g, b*g, g, g, title(tip), attentionSheet)
			if am.Query >= 0 {
				q := cell / float64(g)
				d.raw(`<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="%s" stroke-width="1.2" pointer-events="none"/>`,
					num(x+q*float64(am.Query%g)), num(y+q*float64(am.Query/g)), num(q), num(q), Selected)
			}
			if am.Cursor != nil && am.Cursor[0] == b && am.Cursor[1] == c {
				d.cursor(x, y, cell, cell)
			}
		}
	}
	return d.String()
}

// Tip describes the map of block b (0-based) and column c (the heads,
// then their mean) in words: the figure's tooltip, and what the page reads
// out for the keyboard cursor.
func (am AttentionMaps) Tip(b, c int) string {
	wts, cls, name := am.mapOf(b, c)
	tip := fmt.Sprintf("block %d, %s: max weight on a patch %.3f", b+1, name, maxOf(wts))
	if am.CLS != nil {
		tip += fmt.Sprintf(", on [CLS] %.3f", cls)
	}
	return tip
}

// mapOf is the map of block b and column c: one head's weights on the
// patches and on [CLS], or past the last head their mean.
func (am AttentionMaps) mapOf(b, c int) (wts []float32, cls float32, name string) {
	heads := len(am.Weights[b])
	if c < heads {
		if am.CLS != nil {
			cls = am.CLS[b][c]
		}
		return am.Weights[b][c], cls, fmt.Sprintf("head %d", c+1)
	}
	wts = make([]float32, len(am.Weights[b][0]))
	for hd := 0; hd < heads; hd++ {
		for p, v := range am.Weights[b][hd] {
			wts[p] += v / float32(heads)
		}
		if am.CLS != nil {
			cls += am.CLS[b][hd] / float32(heads)
		}
	}
	return wts, cls, "mean of heads"
}
func maxOf(v []float32) float32 {
	var m float32
	for _, x := range v {
		if x > m {
			m = x
		}
	}
	return m
}

// attentionSheet is the id of the attention figure's picture of every map.
const attentionSheet = "vl-attention-sheet"

// paintWeights draws one map into img at (x0, y0), one pixel per patch,
// scaled to its maximum.
func paintWeights(img *image.NRGBA, x0, y0 int, w []float32, g int) {
	m := float64(maxOf(w))
	for p, v := range w {
		t := math.NaN()
		if !math.IsNaN(float64(v)) && m > 0 {
			t = float64(v) / m
		}
		img.SetNRGBA(x0+p%g, y0+p/g, Viridis(t))
	}
}
