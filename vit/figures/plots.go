package figures

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"vitlens/vit/explain"
	"vitlens/vit/explain/batch"
)

// palette is matplotlib's tab10, so the figures read like the notebooks'.
var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255}, {148, 103, 189, 255},
	{140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255}, {188, 189, 34, 255}, {23, 190, 207, 255},
}

func colorAt(i int) color.RGBA { return palette[i%len(palette)] }

func light(c color.RGBA) color.RGBA {
	return color.RGBA{uint8((int(c.R) + 255*2) / 3), uint8((int(c.G) + 255*2) / 3), uint8((int(c.B) + 255*2) / 3), 255}
}

var dashed = []vg.Length{vg.Points(4), vg.Points(3)}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// blockTicks labels integer x positions 1..depth (thinned for deep models).
func blockTicks(depth int) plot.Ticker {
	step := max(1, depth/12)
	return plot.TickerFunc(func(min, max float64) []plot.Tick {
		var t []plot.Tick
		for b := 1; b <= depth; b++ {
			label := ""
			if b%step == 0 || b == 1 {
				label = strconv.Itoa(b)
			}
			t = append(t, plot.Tick{Value: float64(b), Label: label})
		}
		return t
	})
}

// line adds a line with points; NaN values break nothing (they are left out).
func line(p *plot.Plot, name string, xs, ys []float64, c color.Color, dash bool) {
	var pts plotter.XYs
	for i := range xs {
		if !math.IsNaN(ys[i]) && !math.IsInf(ys[i], 0) {
			pts = append(pts, plotter.XY{X: xs[i], Y: ys[i]})
		}
	}
	if len(pts) == 0 {
		return
	}
	l, s, err := plotter.NewLinePoints(pts)
	if err != nil {
		return
	}
	l.Color, s.Color = c, c
	s.Radius = vg.Points(2)
	if dash {
		l.Dashes = dashed
	}
	p.Add(l, s)
	if name != "" {
		p.Legend.Add(name, l, s)
	}
}

func hline(p *plot.Plot, y float64, name string, c color.Color) {
	f := plotter.NewFunction(func(float64) float64 { return y })
	f.Color = c
	f.Dashes = dashed
	f.Width = vg.Points(0.8)
	p.Add(f)
	if name != "" {
		p.Legend.Add(name, f)
	}
}

// stars marks positions where p < 0.05.
func stars(p *plot.Plot, xs, ps []float64, y float64) {
	var xy plotter.XYs
	var labels []string
	for i, pv := range ps {
		if pv < 0.05 {
			xy = append(xy, plotter.XY{X: xs[i], Y: y})
			labels = append(labels, "*")
		}
	}
	if len(xy) == 0 {
		return
	}
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: xy, Labels: labels})
	if err != nil {
		return
	}
	for i := range l.TextStyle {
		l.TextStyle[i].XAlign = draw.XCenter
		l.TextStyle[i].Font.Size = vg.Points(12)
	}
	p.Add(l)
}

// quantileBox draws a box from precomputed statistics.
func quantileBox(loc float64, s boxStats, c color.RGBA, width vg.Length) *plotter.BoxPlot {
	b, _ := plotter.NewBoxPlot(width, loc, plotter.Values{s.adjLow, s.q1, s.median, s.q3, s.adjHigh})
	b.Median, b.Quartile1, b.Quartile3, b.AdjLow, b.AdjHigh, b.Min, b.Max = s.median, s.q1, s.q3, s.adjLow, s.adjHigh, s.adjLow, s.adjHigh
	b.Outside = nil // fliers hidden, as the original's box plots
	b.FillColor = light(c)
	b.BoxStyle.Color = c
	b.MedianStyle.Color = c
	b.WhiskerStyle.Color = c
	return b
}

// legendSwatch is a filled square for box-plot legends.
func legendSwatch(c color.RGBA) plot.Thumbnailer {
	poly, _ := plotter.NewPolygon(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 0}, {X: 1, Y: 1}})
	poly.Color = light(c)
	poly.LineStyle.Color = c
	return poly
}

func blocksX(depth int) []float64 {
	xs := make([]float64, depth)
	for b := range xs {
		xs[b] = float64(b + 1)
	}
	return xs
}

// pairedBoxes draws two groups of boxes per block with stars from ps.
func pairedBoxes(name, title, caption string, h *identHist, groups [2]int, names [2]string, ps []float64) *Figure {
	depth := len(h.counts[0])
	p := newPlot(title, "block", "class identifiability")
	hline(p, 0.5, "", color.Gray{Y: 100})
	width := vg.Points(math.Max(3, 110/float64(depth)))
	for gi, g := range groups {
		c := colorAt(gi)
		any := false
		for b := 0; b < depth; b++ {
			s := h.box(g, b)
			if s.n == 0 {
				continue
			}
			any = true
			p.Add(quantileBox(float64(b+1)+(float64(gi)-0.5)*0.36, s, c, width))
		}
		if any {
			p.Legend.Add(names[gi], legendSwatch(c))
		}
	}
	p.Y.Min, p.Y.Max = 0, 1.08
	p.X.Min, p.X.Max = 0.4, float64(depth)+0.6
	p.X.Tick.Marker = blockTicks(depth)
	p.Legend.Left = true
	p.Legend.Top = false
	p.Legend.YOffs = vg.Points(6)
	stars(p, blocksX(depth), ps, 1.02)
	return single(name, title, caption, p, 16*vg.Centimeter, 8*vg.Centimeter)
}

func identEvolution(r *Run) *Figure {
	ps := make([]float64, len(r.Summary.Blocks))
	for i, b := range r.Summary.Blocks {
		ps[i] = b.VsRandomP
	}
	first := [2]int{groupCLS, groupImage}
	names := [2]string{"[CLS]", "image tokens"}
	if !r.Manifest.Config.ClassToken {
		first = [2]int{groupImage, groupImage}
		names = [2]string{"tokens", ""}
	}
	f := pairedBoxes("identifiability_evolution-"+r.Label, "class identifiability per block: "+r.Label,
		"Box plots of r = 1 − rank/C of the true class (hs, final LN + head) per block; dashed: chance 0.5; "+
			"* : pretrained > random-init model, Wilcoxon signed-rank p < 0.05 (needs `vitlens summary --random`).",
		r.Ident, first, names, ps)
	return f
}

func contextVsClass(r *Run) *Figure {
	ps := make([]float64, len(r.Summary.Blocks))
	for i, b := range r.Summary.Blocks {
		ps[i] = b.ClassCtxP
	}
	return pairedBoxes("context_vs_class-"+r.Label, "class- vs context-labelled tokens: "+r.Label,
		"Identifiability of image tokens inside (class) and outside (context) the object mask; "+
			"* : class > context, permutation test p < 0.05.",
		r.Ident, [2]int{groupClass, groupContext}, [2]string{"class-labelled", "context-labelled"}, ps)
}

// hasPatchLabels reports whether both class- and context-labelled tokens
// were seen (at the last block; every block sees the same tokens).
func hasPatchLabels(h *identHist) bool {
	seen := func(g int) bool {
		for _, c := range h.counts[g][len(h.counts[g])-1] {
			if c > 0 {
				return true
			}
		}
		return false
	}
	return seen(groupClass) && seen(groupContext)
}

func compositionality(r *Run) *Figure {
	bl := r.Summary.Blocks
	xs := blocksX(len(bl))
	get := func(f func(i int) float64) []float64 {
		v := make([]float64, len(bl))
		for i := range bl {
			v[i] = f(i)
		}
		return v
	}
	left := newPlot("class similarity change", "block", "share of tokens with Δ logit > 0")
	hline(left, 0.5, "", color.Gray{Y: 100})
	line(left, "attn [CLS]", xs, get(func(i int) float64 { return bl[i].AttnCLS }), colorAt(0), false)
	line(left, "attn image", xs, get(func(i int) float64 { return bl[i].AttnImage }), colorAt(0), true)
	line(left, "mlp [CLS]", xs, get(func(i int) float64 { return bl[i].MLPCLS }), colorAt(1), false)
	line(left, "mlp image", xs, get(func(i int) float64 { return bl[i].MLPImage }), colorAt(1), true)
	left.Y.Min, left.Y.Max = 0, 1
	left.X.Tick.Marker = blockTicks(len(bl))
	right := newPlot("residual stream composition", "block", "% tokens whose hs top-1 equals…")
	for k, s := range []struct {
		name string
		f    func(i int) float64
	}{
		{"attn top-1", func(i int) float64 { return bl[i].MatchAttn }},
		{"mlp top-1", func(i int) float64 { return bl[i].MatchMLP }},
		{"previous hs top-1", func(i int) float64 { return bl[i].MatchPrev }},
		{"none (composition)", func(i int) float64 { return bl[i].MatchNone }},
	} {
		vals := make(plotter.Values, len(bl))
		for i := range bl {
			v := 100 * s.f(i)
			if math.IsNaN(v) {
				v = 0
			}
			vals[i] = v
		}
		bar, err := plotter.NewBarChart(vals, vg.Points(math.Max(1.5, 60/float64(len(bl)))))
		if err != nil {
			continue
		}
		bar.XMin = 1
		bar.Offset = vg.Points((float64(k) - 1.5) * math.Max(1.5, 60/float64(len(bl))))
		bar.Color = colorAt(k)
		bar.LineStyle.Width = 0
		right.Add(bar)
		right.Legend.Add(s.name, bar)
	}
	right.X.Tick.Marker = blockTicks(len(bl))
	right.X.Min, right.X.Max = 1.4, float64(len(bl))+0.6
	right.Y.Min, right.Y.Max = 0, 135 // room for the legend above the bars
	right.Legend.Left = true
	return &Figure{Name: "compositionality-" + r.Label, Title: "compositionality: " + r.Label,
		Caption: "Left: share of tokens whose true-class logit under the attention (mlp) output exceeds that of the block input. " +
			"Right: how often the block output's top-1 class equals that of the attention output, the MLP output, the previous block output, or none " +
			"(overlapping categories; the original tested attn twice, A5).",
		Rows: 1, Cols: 2, Panels: []*plot.Plot{left, right}, Width: 24 * vg.Centimeter, Height: 8 * vg.Centimeter}
}

// depthAxis returns x positions for a run's blocks: block numbers when all
// compared runs share a depth, else block/depth.
func depthAxis(depth int, shared bool) []float64 {
	xs := blocksX(depth)
	if !shared {
		for i := range xs {
			xs[i] /= float64(depth)
		}
	}
	return xs
}

// sharedDepth returns the depth the runs are drawn with when they all share
// it (after block pairing).
func sharedDepth(runs []*Run, pair pairing) (int, bool) {
	d := -1
	for _, r := range runs {
		if d >= 0 && pair.depth(r) != d {
			return 0, false
		}
		d = pair.depth(r)
	}
	return d, d > 0
}

// pairing says which runs a cross-model figure draws with consecutive block
// pairs averaged (spec A26: the original averaged ViT-L's blocks (2b−1, 2b)
// to compare its 24 blocks with the 12 of the other models).
type pairing map[*Run]bool

// pairDeep pairs, when on, every run twice as deep as the shallowest.
func pairDeep(runs []*Run, on bool) pairing {
	p := pairing{}
	if !on || len(runs) == 0 {
		return p
	}
	shallow := runs[0].Manifest.Config.Depth
	for _, r := range runs {
		shallow = min(shallow, r.Manifest.Config.Depth)
	}
	for _, r := range runs {
		p[r] = r.Manifest.Config.Depth == 2*shallow
	}
	return p
}

// depth is the number of points r contributes.
func (p pairing) depth(r *Run) int {
	if p[r] {
		return r.Manifest.Config.Depth / 2
	}
	return r.Manifest.Config.Depth
}

// series returns r's per-block values as drawn: v itself, or the means of
// its consecutive pairs.
func (p pairing) series(r *Run, v []float64) []float64 {
	if !p[r] {
		return v
	}
	return PairAverage(v)
}

// PairAverage averages consecutive pairs: out[i] = (v[2i] + v[2i+1]) / 2,
// the original's "normalized blocks" of ViT-L (a trailing odd value is
// dropped).
func PairAverage(v []float64) []float64 {
	out := make([]float64, len(v)/2)
	for i := range out {
		out[i] = (v[2*i] + v[2*i+1]) / 2
	}
	return out
}

func xLabel(shared bool) string {
	if shared {
		return "block"
	}
	return "relative depth (block / depth)"
}

func meanEvolution(runs []*Run, pair pairing) *Figure {
	depth, shared := sharedDepth(runs, pair)
	p := newPlot("mean class identifiability", xLabel(shared), "mean r")
	hline(p, 0.5, "", color.Gray{Y: 100})
	paired := ""
	for i, r := range runs {
		xs := depthAxis(pair.depth(r), shared)
		var cls, img []float64
		for _, b := range r.Summary.Blocks {
			cls = append(cls, b.CLSIdent)
			img = append(img, b.ImageIdent)
		}
		name := r.Label
		if pair[r] {
			name += " (block pairs)"
			paired = " Runs marked (block pairs) average consecutive blocks (2b−1, 2b), as the original did for ViT-L (A26)."
		}
		line(p, name+" [CLS]", xs, pair.series(r, cls), colorAt(i), false)
		line(p, name+" image", xs, pair.series(r, img), colorAt(i), true)
	}
	p.Y.Max = 1.02
	if shared {
		p.X.Tick.Marker = blockTicks(depth)
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(10)
	return single("mean_evolution", "mean identifiability", "Mean r of [CLS] (solid) and image tokens (dashed) per block."+paired, p, 16*vg.Centimeter, 9*vg.Centimeter)
}

func changeRate(runs []*Run) *Figure {
	depth, shared := sharedDepth(runs, nil) // the original drew every block here, ViT-L's too
	p := newPlot("class identifiability change rate", xLabel(shared), "share of image tokens with a higher true-class logit")
	for i, r := range runs {
		xs := depthAxis(r.Manifest.Config.Depth, shared)
		var v []float64
		for _, b := range r.Summary.Blocks {
			v = append(v, b.ChangeRate)
		}
		line(p, r.Label, xs, v, colorAt(i), false)
	}
	p.Y.Min, p.Y.Max = 0.4, 1
	if shared {
		p.X.Tick.Marker = blockTicks(depth)
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(10)
	return single("prob_increment", "change rate", "Share of (image, image token) pairs whose true-class logit at block b exceeds that at block b−1 (strict, A35).", p, 16*vg.Centimeter, 8*vg.Centimeter)
}

func matchScore(r *Run) *Figure {
	depth := len(r.ClassValue)
	p := newPlot("class-value agreement: "+r.Label, "block", "max cosine(class embedding, value vector)")
	var rnd, ps []float64
	for b := 0; b < depth; b++ {
		if len(r.ClassValue[b][0]) > 0 {
			box, err := plotter.NewBoxPlot(vg.Points(math.Max(4, 120/float64(depth))), float64(b+1), plotter.Values(r.ClassValue[b][0]))
			if err == nil {
				box.Outside = nil
				box.FillColor = light(colorAt(0))
				p.Add(box)
			}
		}
		rnd = append(rnd, mean(r.ClassValue[b][1]))
		ps = append(ps, pAt(r, b, func(m int) float64 { return r.Memory.Blocks[m].ClassValueP }))
	}
	line(p, "random-init model (mean)", blocksX(depth), rnd, colorAt(3), true)
	p.X.Tick.Marker = blockTicks(depth)
	p.X.Min, p.X.Max = 0.4, float64(depth)+0.6
	p.Y.Min = 0
	top := p.Y.Max * 1.05
	stars(p, blocksX(depth), ps, top)
	p.Y.Max = top * 1.05
	return single("match_score-"+r.Label, "class-value agreement", "Per class, the best cosine between its (normalised) class embedding and any value vector of the "+
		r.Memory.Layer+" layer; * : above the seeded random-init model, Wilcoxon p < 0.05.", p, 16*vg.Centimeter, 8*vg.Centimeter)
}

func pAt(r *Run, b int, f func(m int) float64) float64 {
	for i, mb := range r.Memory.Blocks {
		if mb.Block == b {
			return f(i)
		}
	}
	return math.NaN()
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func keyValue(r *Run) *Figure {
	depth := len(r.KeyValue)
	p := newPlot("key-value agreement: "+r.Label, "block", "% of a concept's tokens in agreement")
	rng := rand.New(rand.NewPCG(1, 2))
	var pts plotter.XYs
	var means, rnd []float64
	for b := 0; b < depth; b++ {
		var m, mr []float64
		for _, v := range r.KeyValue[b] {
			pts = append(pts, plotter.XY{X: float64(b+1) + (rng.Float64()-0.5)*0.5, Y: 100 * v[0]})
			m = append(m, 100*v[0])
			mr = append(mr, 100*v[1])
		}
		means, rnd = append(means, mean(m)), append(rnd, mean(mr))
	}
	if len(pts) > 0 {
		s, err := plotter.NewScatter(pts)
		if err == nil {
			s.GlyphStyle.Radius = vg.Points(1.2)
			s.GlyphStyle.Color = light(colorAt(0))
			p.Add(s)
			p.Legend.Add("concepts", s)
		}
	}
	line(p, "mean", blocksX(depth), means, colorAt(3), false)
	line(p, "random class (mean)", blocksX(depth), rnd, colorAt(7), true)
	p.X.Tick.Marker = blockTicks(depth)
	p.X.Min, p.X.Max = 0.5, float64(depth)+0.5
	p.Y.Min, p.Y.Max = 0, 118
	p.Legend.Left = true
	return single("key_val_agr-"+r.Label, "key-value agreement", "Per concept, the % of (image, token) pairs whose top-5 activated "+r.Memory.Layer+
		" memories include one of the true class's top-5 memories (A10: the code's definition).", p, 16*vg.Centimeter, 8*vg.Centimeter)
}

func accAgreement(r *Run) *Figure {
	depth := r.Manifest.Config.Depth
	var v, ps []float64
	for b := 0; b < depth; b++ {
		v = append(v, 100*pAt(r, b, func(m int) float64 { return r.Memory.Blocks[m].CorrectMinusIncorrect }))
		ps = append(ps, pAt(r, b, func(m int) float64 { return r.Memory.Blocks[m].CorrectP }))
	}
	p := newPlot("accuracy vs agreement: "+r.Label, "block", "[CLS] agreement, correct − incorrect (%)")
	hline(p, 0, "", color.Gray{Y: 100})
	line(p, "", blocksX(depth), v, colorAt(0), false)
	hi := 0.0
	for _, x := range v {
		if !math.IsNaN(x) {
			hi = math.Max(hi, x)
		}
	}
	stars(p, blocksX(depth), ps, hi+3)
	p.X.Tick.Marker = blockTicks(depth)
	return single("acc_agr_rate-"+r.Label, "accuracy vs agreement", "[CLS] key-value agreement of correctly minus wrongly classified images; * : permutation test p < 0.05.", p, 16*vg.Centimeter, 7*vg.Centimeter)
}

func memComposition(r *Run) *Figure {
	depth := r.Manifest.Config.Depth
	var v []float64
	for b := 0; b < depth; b++ {
		v = append(v, 100*pAt(r, b, func(m int) float64 { return r.Memory.Blocks[m].Composition }))
	}
	p := newPlot("memory composition: "+r.Label, "block", "% tokens")
	line(p, "", blocksX(depth), v, colorAt(0), false)
	p.X.Tick.Marker = blockTicks(depth)
	p.Y.Min = 0
	return single("composition-"+r.Label, "memory composition", "% of tokens for which the top class of one of their top-5 "+r.Memory.Layer+
		" memories equals the top-1 class of the sublayer output; the rest are 'compositional'.", p, 16*vg.Centimeter, 7*vg.Centimeter)
}

func compareAll(runs []*Run, pair pairing) *Figure {
	_, shared := sharedDepth(runs, pair)
	panels := make([]*plot.Plot, 4)
	titles := []string{"class-value agreement, attn", "class-value agreement, mlp", "key-value agreement %, attn", "key-value agreement %, mlp"}
	for i := range panels {
		panels[i] = newPlot(titles[i], xLabel(shared), "")
	}
	models := map[string]int{}
	for _, r := range runs {
		col := 0
		if r.Memory.Layer == "mlp" {
			col = 1
		}
		model := r.Manifest.ModelSHA256 + r.Manifest.ModelPath
		if _, ok := models[model]; !ok {
			models[model] = len(models)
		}
		c := colorAt(models[model])
		xs := depthAxis(pair.depth(r), shared)
		var cv, kv []float64
		for b := range r.Manifest.Config.Depth {
			cv = append(cv, mean(r.ClassValue[b][0]))
			var m []float64
			for _, v := range r.KeyValue[b] {
				m = append(m, 100*v[0])
			}
			kv = append(kv, mean(m))
		}
		name := r.Label
		if pair[r] {
			name += " (block pairs)"
		}
		line(panels[col], name, xs, pair.series(r, cv), c, false)
		line(panels[2+col], name, xs, pair.series(r, kv), c, false)
	}
	return &Figure{Name: "compare_all", Title: "memories across models", Caption: "Mean class-value agreement and mean key-value agreement rate per block, for every memories run.",
		Rows: 2, Cols: 2, Panels: panels, Width: 22 * vg.Centimeter, Height: 14 * vg.Centimeter}
}

var orderingNames = map[string]string{
	explain.OrderOurs: "ours (class-space gradients)", explain.OrderChefer: "Chefer et al.",
	explain.OrderProbe: "linear probe", explain.OrderRandom: "random",
}

func perturbation(r *Run, dir string) *Figure {
	rep := r.Removal
	p := newPlot(fmt.Sprintf("%s perturbation: %s", dir, r.Label), "% of image tokens removed", "accuracy")
	what := "least important first: higher is better"
	if dir == explain.Positive {
		what = "most important first: lower is better"
	}
	n := 0
	for _, c := range rep.Curves {
		if c.Direction != dir {
			continue
		}
		xs := make([]float64, len(c.Fraction))
		for i, f := range c.Fraction {
			xs[i] = 100 * f
		}
		name := orderingNames[c.Ordering]
		if name == "" {
			name = c.Ordering
		}
		line(p, fmt.Sprintf("%s (AUC %.3f / %.3f)", name, c.AUC, c.AUCOriginal), xs, c.Accuracy, colorAt(n), c.Ordering == explain.OrderRandom)
		n++
	}
	if n == 0 {
		return nil
	}
	p.Y.Min, p.Y.Max = 0, 1
	// Put the legend where a good map leaves room: negative curves stay
	// high until late (bottom left is free), positive ones fall early.
	p.Legend.Top, p.Legend.Left = false, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(8), vg.Points(6)
	if dir == explain.Positive {
		p.Legend.Top, p.Legend.Left = true, false
		p.Legend.XOffs, p.Legend.YOffs = 0, -vg.Points(10)
	}
	return single(dir+"_perturb-"+r.Label, dir+" perturbation", fmt.Sprintf("Accuracy over %d images as image tokens are dropped from the sequence (%s); every count 0..%d is evaluated (A15); our map from the %s loss. AUC trapezoid / original: the area under accuracy vs fraction removed, and Σacc/(max·P) over 1..P−1 removed as the original prints it.",
		rep.Images, what, rep.Patches, mapLoss(r.Manifest.Params)), p, 14*vg.Centimeter, 9*vg.Centimeter)
}

func probeComparison(r *Run) *Figure {
	rep := r.Probe
	depth := r.Manifest.Config.Depth
	p := newPlot("linear probes vs class projection: "+r.Label, "block", "top-1 accuracy (image tokens)")
	sites := []string{"hs", "attn", "mlp", "hs_mid"}
	for i, s := range sites {
		probeAcc := make([]float64, depth)
		lensAcc := make([]float64, depth)
		found := false
		for b := range probeAcc {
			probeAcc[b], lensAcc[b] = math.NaN(), math.NaN()
		}
		for _, l := range rep.Layers {
			if l.Site == s && l.Block < depth {
				probeAcc[l.Block], lensAcc[l.Block] = l.ImageAccuracy, l.LensImageAccuracy
				found = true
			}
		}
		if !found {
			continue
		}
		line(p, "probe "+s, blocksX(depth), probeAcc, colorAt(i), false)
		line(p, "projection "+s, blocksX(depth), lensAcc, colorAt(i), true)
	}
	p.X.Tick.Marker = blockTicks(depth)
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top, p.Legend.Left = true, true
	return single("probe_comparison-"+r.Label, "probe comparison", fmt.Sprintf("Per-token top-1 accuracy averaged over image tokens ([CLS] probe dropped, as in notebook 4), for ridge probes trained on %s (solid) and for the class-embedding projection (dashed), %d test images.",
		r.Manifest.Params["train"], rep.Images), p, 16*vg.Centimeter, 9*vg.Centimeter)
}

// examples tiles the first images of an explain run: input, our map, Chefer's.
func examples(r *Run, maxImages int) (*Figure, error) {
	imgs := r.Explained
	if len(imgs) > maxImages {
		imgs = imgs[:maxImages]
	}
	if len(imgs) == 0 {
		return nil, nil
	}
	cols := []string{"image", "ours", "chefer"}
	var panels []*plot.Plot
	for _, im := range imgs {
		for _, c := range cols {
			path := filepath.Join(r.Dir, batch.OverlayDir, im.Overlay+"_"+c+".png")
			pic, err := readPNG(path)
			if err != nil {
				if c == "chefer" {
					panels = append(panels, nil)
					continue
				}
				return nil, err
			}
			p := plot.New()
			p.HideAxes()
			switch c {
			case "image":
				lbl := "?"
				if im.Label >= 0 {
					lbl = r.ClassName(int(im.Label))
				}
				p.Title.Text = fmt.Sprintf("%s → %s", lbl, r.ClassName(int(im.Pred)))
			case "ours":
				p.Title.Text = "ours: " + r.ClassName(int(im.Target))
			default:
				p.Title.Text = "Chefer et al."
			}
			p.Title.TextStyle.Font.Size = vg.Points(8)
			b := pic.Bounds()
			p.Add(plotter.NewImage(pic, 0, 0, float64(b.Dx()), float64(b.Dy())))
			panels = append(panels, p)
		}
	}
	return &Figure{Name: "explainability-" + r.Label, Title: "explainability examples", Caption: "Input (true → predicted class), the paper's map (−Σ over blocks and heads of ∂CE/∂attention of [CLS]) and Chefer et al.'s relevance, min-max scaled, JET overlays.",
		Rows: len(imgs), Cols: 3, Panels: panels, Width: 12 * vg.Centimeter, Height: vg.Length(len(imgs)) * 4.3 * vg.Centimeter}, nil
}

// headMaps tiles the head-specific maps of the first explained image
// (blocks × heads, the paper's block- and head-specific figure), when the
// run was made with `explain --per-head`; nil otherwise.
func headMaps(r *Run) (*Figure, error) {
	if len(r.Explained) == 0 {
		return nil, nil
	}
	im := r.Explained[0]
	c := r.Manifest.Config
	path := func(b, h int) string {
		return filepath.Join(r.Dir, batch.OverlayDir, fmt.Sprintf("%s_ours_block%d_head%d.png", im.Overlay, b+1, h+1))
	}
	if _, err := os.Stat(path(0, 0)); err != nil {
		return nil, nil
	}
	var panels []*plot.Plot
	for b := 0; b < c.Depth; b++ {
		for h := 0; h < c.Heads; h++ {
			pic, err := readPNG(path(b, h))
			if err != nil {
				return nil, err
			}
			p := plot.New()
			p.HideAxes()
			p.Title.Text = fmt.Sprintf("block %d, head %d", b+1, h+1)
			p.Title.TextStyle.Font.Size = vg.Points(7)
			bd := pic.Bounds()
			p.Add(plotter.NewImage(pic, 0, 0, float64(bd.Dx()), float64(bd.Dy())))
			panels = append(panels, p)
		}
	}
	side := 3 * vg.Centimeter
	return &Figure{Name: "explainability_heads-" + r.Label, Title: "head-specific maps",
		Caption: fmt.Sprintf("Image %s (true %s, explained class %s): the paper's block- and head-specific map −∂ℓ_0/∂A[h, 0, 1:] of every block (rows) and head (columns), each min-max scaled on its own, JET overlays.",
			im.ID, labelName(r, im.Label), r.ClassName(int(im.Target))),
		Rows: c.Depth, Cols: c.Heads, Panels: panels, Width: vg.Length(c.Heads) * side, Height: vg.Length(c.Depth) * (side + vg.Points(10))}, nil
}

func labelName(r *Run, label int32) string {
	if label < 0 {
		return "unknown"
	}
	return r.ClassName(int(label))
}

func readPNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}
