package session

import (
	"errors"
	"fmt"

	"vitlens/vit"
	"vitlens/vit/activations"
	"vitlens/vit/lens"
	"vitlens/vit/patching"
)

// PatchGrid names one of the page's patching maps: which hook every block
// is patched at, and how it is cut (the map's columns).
type PatchGrid string

const (
	// GridHeads patches blocks.B.attn.hook_z one head at a time, every
	// token together: a blocks × heads map.
	GridHeads PatchGrid = "heads"
	// GridResidPre patches the residual stream entering block B
	// (blocks.B.hook_resid_pre) one token at a time: blocks × tokens.
	GridResidPre PatchGrid = "resid_pre"
	// GridResidPost patches the stream leaving block B
	// (blocks.B.hook_resid_post) one token at a time: blocks × tokens.
	GridResidPost PatchGrid = "resid_post"
)

// PatchGrids lists the maps the page offers, in its order.
var PatchGrids = []PatchGrid{GridHeads, GridResidPre, GridResidPost}

// Hook is the hook pattern the grid patches.
func (g PatchGrid) Hook() string {
	pattern, _, _ := g.cut()
	return pattern
}

// cut says which hooks the grid patches and how they are cut into vit/patching's sites.
func (g PatchGrid) cut() (pattern string, per patching.Per, err error) {
	switch g {
	case GridHeads:
		return "blocks.*.attn.hook_z", patching.PerHead, nil
	case GridResidPre:
		return "blocks.*.hook_resid_pre", patching.PerToken, nil
	case GridResidPost:
		return "blocks.*.hook_resid_post", patching.PerToken, nil
	}
	return "", "", fmt.Errorf("unknown patching map %q (want heads, resid_pre or resid_post)", g)
}

// PatchOptions choose the map and the metric. A and B are classes, -1 for
// the clean image's prediction (A) and the corrupted image's (B); Metric is
// vit/patching's kind: "logit_diff" (A − B), "logit" or "rank" (of A).
type PatchOptions struct {
	Grid   PatchGrid
	Metric string
	A, B   int
}

// PatchMap is every patch of one grid: the corrupted image run once per
// site with the clean image's activation written in (vit/patching's
// ModePatch), scored by the chosen metric. Each cell can then be run once
// more to show the rank of class A with that patch.
type PatchMap struct {
	Grid   PatchGrid
	Metric patching.Metric // the classes resolved
	// CleanClass and CorruptClass are the two images' predictions.
	CleanClass, CorruptClass int
	// Clean and Corrupt are the metric unpatched; CleanRank and
	// CorruptRank the rank of class A (0 is the top).
	Clean, Corrupt         float64
	CleanRank, CorruptRank int
	// Effect[b][j] is the patched metric minus the corrupted one, j a head
	// (GridHeads) or a token (the residual grids).
	Effect [][]float64

	run     patching.Run
	corrupt *vit.Tensor
	src     patching.Source
	sites   []patching.Site
}

// PatchCell is one cell run again: the metric and the rank of class A
// with that site patched.
type PatchCell struct {
	Metric float64
	Rank   int
}

// ErrPatchStopped is Patch's error when its progress function asked it to
// stop.
var ErrPatchStopped = errors.New("patching stopped")

// Patch computes a patching map of the corrupted image from the clean one:
// one forward per cell (blocks × heads, or blocks × tokens), two more for
// the unpatched runs. progress, when not nil, is called after every cell
// with the cells done and their number; it returns false to stop (Patch
// then returns ErrPatchStopped). The single-threaded browser yields there,
// so that the page keeps responding.
func Patch(m *vit.Model, clean, corrupt *vit.Tensor, opt PatchOptions, progress func(done, total int) bool) (*PatchMap, error) {
	c := m.Config
	pattern, per, err := opt.Grid.cut()
	if err != nil {
		return nil, err
	}
	hooks, err := c.MatchHooks(pattern)
	if err != nil {
		return nil, err
	}
	sites, err := patching.Sites(c, hooks, per, c.NumTokens())
	if err != nil {
		return nil, err
	}
	r := patching.Run{Model: m, Mode: patching.ModePatch}
	src, cleanLogits, err := r.Cache(clean, hooks)
	if err != nil {
		return nil, err
	}
	tr, err := m.Forward(corrupt, vit.Options{})
	if err != nil {
		return nil, err
	}
	pm := &PatchMap{Grid: opt.Grid, CleanClass: lens.Argmax(cleanLogits), CorruptClass: lens.Argmax(tr.Logits),
		corrupt: corrupt, src: src, sites: sites}
	metric := patching.Metric{Kind: opt.Metric, A: opt.A, B: opt.B}
	if metric.A < 0 {
		metric.A = pm.CleanClass
	}
	if metric.B < 0 {
		metric.B = pm.CorruptClass
	}
	// ParseMetric is the one place that checks a metric and its classes.
	if metric, err = patching.ParseMetric(metric.String(), c.Classes); err != nil {
		return nil, err
	}
	if metric.Kind == "logit_diff" && metric.A == metric.B {
		return nil, fmt.Errorf("the logit difference of class %d with itself is always 0: both images are predicted %d; choose two classes or another metric", metric.A, metric.A)
	}
	r.Metric, pm.Metric = metric, metric
	rank := patching.Metric{Kind: "rank", A: metric.A}
	pm.Clean, pm.Corrupt = metric.Value(cleanLogits), metric.Value(tr.Logits)
	pm.CleanRank, pm.CorruptRank = int(rank.Value(cleanLogits)), int(rank.Value(tr.Logits))
	res := make([]patching.Result, 0, len(sites))
	for i, s := range sites {
		one, err := r.Patch(corrupt, []patching.Site{s}, src, pm.Clean, pm.Corrupt)
		if err != nil {
			return nil, err
		}
		res = append(res, one...)
		if progress != nil && !progress(i+1, len(sites)) {
			return nil, ErrPatchStopped
		}
	}
	cols := c.Heads
	if per == patching.PerToken {
		cols = c.NumTokens()
	}
	pm.Effect = make([][]float64, c.Depth)
	for b := range pm.Effect {
		pm.Effect[b] = make([]float64, cols)
	}
	for _, p := range res {
		pm.Effect[p.Hook.Block][pm.col(p.Site)] = p.Metric - pm.Corrupt
	}
	pm.run = r
	return pm, nil
}

// col is a site's column: its head, or its token.
func (pm *PatchMap) col(s patching.Site) int {
	if pm.Grid == GridHeads {
		return s.Head
	}
	return s.Token
}

// Cell patches one site again (block, and head or token), one forward, and
// returns the metric and the rank of class A.
func (pm *PatchMap) Cell(block, col int) (PatchCell, error) {
	for _, s := range pm.sites {
		if s.Hook.Block != block || pm.col(s) != col {
			continue
		}
		// One forward gives both the metric and the rank.
		logits, err := patching.CPU{Model: pm.run.Model}.PatchLogits(pm.corrupt, []patching.Site{s}, pm.src, pm.run.Edit)
		if err != nil {
			return PatchCell{}, err
		}
		rank := patching.Metric{Kind: "rank", A: pm.Metric.A}
		return PatchCell{Metric: pm.Metric.Value(logits[0]), Rank: int(rank.Value(logits[0]))}, nil
	}
	what := "head"
	if pm.Grid != GridHeads {
		what = "token"
	}
	return PatchCell{}, fmt.Errorf("no %s %d in block %d", what, col, block)
}

// ActivationsFile is the image's activations at every hook point, every
// token, float32, in the layout of a `vitlens cache` chunk file (one image:
// a tensor per hook named by it, [1, tokens, ...]; "images" and the id in
// the metadata).
func ActivationsFile(m *vit.Model, pixels *vit.Tensor, id string) ([]byte, error) {
	c := m.Config
	hooks := c.Hooks()
	positions, err := activations.AllTokens.Positions(c)
	if err != nil {
		return nil, err
	}
	fns, cache := vit.CacheHooks(hooks)
	if _, err := m.Forward(pixels, vit.Options{Hooks: fns}); err != nil {
		return nil, err
	}
	sel := map[vit.Hook]*vit.Tensor{}
	for h, a := range cache {
		sel[h] = activations.Select(h, a, positions)
	}
	b := activations.NewBatch(hooks)
	if err := b.Add(0, id, sel); err != nil {
		return nil, err
	}
	return b.Safetensors(activations.F32, map[string]string{"hooks": "all", "tokens": string(activations.AllTokens)})
}
