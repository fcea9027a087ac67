// Package patching runs activation patching on a ViT: the corrupted image's
// forward with the activation at one hook (and token, or head) replaced by
// the clean image's, a zero, a dataset mean or another image's, scored by a
// metric of the logits; and attribution patching, its first-order estimate
// (a_clean − a_corrupt)·∇metric for every site from one backward pass.
//
// Every patch is one forward pass: on the CPU (CPU, the reference) of
// vit.Model.Forward with a hook that writes the replacement
// (vit.Options.Hooks); on the GPU (package gpu, a Patcher) many patches per
// batch. Nothing here re-implements the forward.
package patching

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"vitlens/vit"
	"vitlens/vit/explain"
)

// Per says how each hook's activation is cut into the sites patched one at
// a time (TransformerLens's patching variants).
type Per string

const (
	// PerLayer patches the whole activation at each hook.
	PerLayer Per = "layer"
	// PerToken patches one sequence position at a time (for
	// attn.hook_pattern: one query row), every head together.
	PerToken Per = "token"
	// PerHead patches one head at a time, every position together
	// (hooks with a head axis only).
	PerHead Per = "head"
	// PerPosition patches one head at one position at a time.
	PerPosition Per = "position"
)

// Pers lists the accepted values.
var Pers = []Per{PerLayer, PerToken, PerHead, PerPosition}

// Mode says what replaces the corrupted activation.
type Mode string

const (
	ModePatch    Mode = "patch"    // the clean image's activation
	ModeZero     Mode = "zero"     // zeros (ablation)
	ModeMean     Mode = "mean"     // a dataset mean (from a cache run)
	ModeResample Mode = "resample" // another image's activation
)

// Modes lists the accepted values.
var Modes = []Mode{ModePatch, ModeZero, ModeMean, ModeResample}

// Site is one patch: a hook and, where the cut asks for it, one head and
// one sequence position (-1: all).
type Site struct {
	Hook  vit.Hook
	Head  int
	Token int
}

// Sites cuts each hook into sites for a sequence of n tokens (the
// embedding hooks always have NumTokens rows). A head cut of a hook without
// heads is an error naming the hook.
func Sites(c vit.Config, hooks []vit.Hook, per Per, n int) ([]Site, error) {
	var out []Site
	for _, h := range hooks {
		rows := n
		if !h.Point.PerBlock() {
			rows = c.NumTokens()
		}
		if (per == PerHead || per == PerPosition) && !h.Point.HasHeads() {
			return nil, fmt.Errorf("--per %s needs hooks with heads (attn.hook_q, _k, _v, _pattern, _z); %s has none", per, h.Name())
		}
		switch per {
		case PerLayer:
			out = append(out, Site{h, -1, -1})
		case PerToken:
			for t := 0; t < rows; t++ {
				out = append(out, Site{h, -1, t})
			}
		case PerHead:
			for k := 0; k < c.Heads; k++ {
				out = append(out, Site{h, k, -1})
			}
		case PerPosition:
			for k := 0; k < c.Heads; k++ {
				for t := 0; t < rows; t++ {
					out = append(out, Site{h, k, t})
				}
			}
		default:
			return nil, fmt.Errorf("unknown --per %q (want layer, token, head or position)", per)
		}
	}
	return out, nil
}

// Elements calls f with every flat index of the site's elements in the
// hook's activation (layout vit.Config.HookShape, shape given).
func (s Site) Elements(shape []int, f func(i int)) {
	switch s.Hook.Point {
	case vit.HookPattern: // H×n×n: head, query row
		h, n := shape[0], shape[1]
		for k := 0; k < h; k++ {
			if s.Head >= 0 && k != s.Head {
				continue
			}
			for t := 0; t < n; t++ {
				if s.Token >= 0 && t != s.Token {
					continue
				}
				for j := 0; j < n; j++ {
					f((k*n+t)*n + j)
				}
			}
		}
	case vit.HookQ, vit.HookK, vit.HookV, vit.HookZ: // n×H×dh
		n, h, dh := shape[0], shape[1], shape[2]
		for t := 0; t < n; t++ {
			if s.Token >= 0 && t != s.Token {
				continue
			}
			for k := 0; k < h; k++ {
				if s.Head >= 0 && k != s.Head {
					continue
				}
				for j := 0; j < dh; j++ {
					f((t*h+k)*dh + j)
				}
			}
		}
	default: // rows × width
		n, w := shape[0], shape[1]
		for t := 0; t < n; t++ {
			if s.Token >= 0 && t != s.Token {
				continue
			}
			for j := 0; j < w; j++ {
				f(t*w + j)
			}
		}
	}
}

// Metric scores the logits of a forward pass.
type Metric struct {
	Kind string // "logit_diff", "logit" or "rank"
	A, B int    // classes: A for logit and rank; A − B for logit_diff
}

// ParseMetric reads logit_diff:A,B, logit:A or rank:A (class indices).
func ParseMetric(s string, classes int) (Metric, error) {
	kind, args, _ := strings.Cut(s, ":")
	var ids []int
	for _, a := range strings.Split(args, ",") {
		if a == "" {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(a))
		if err != nil || v < 0 || v >= classes {
			return Metric{}, fmt.Errorf("--metric %q: %q is not a class index in 0..%d", s, a, classes-1)
		}
		ids = append(ids, v)
	}
	switch {
	case kind == "logit_diff" && len(ids) == 2:
		return Metric{Kind: kind, A: ids[0], B: ids[1]}, nil
	case (kind == "logit" || kind == "rank") && len(ids) == 1:
		return Metric{Kind: kind, A: ids[0]}, nil
	}
	return Metric{}, fmt.Errorf("--metric %q: want logit_diff:A,B, logit:A or rank:A with class indices", s)
}

func (m Metric) String() string {
	if m.Kind == "logit_diff" {
		return fmt.Sprintf("logit_diff:%d,%d", m.A, m.B)
	}
	return fmt.Sprintf("%s:%d", m.Kind, m.A)
}

// Value scores logits: logit[A] − logit[B], logit[A], or the rank of A
// (0 is the top class; ties rank in A's favour).
func (m Metric) Value(logits []float32) float64 {
	switch m.Kind {
	case "logit_diff":
		return float64(logits[m.A]) - float64(logits[m.B])
	case "rank":
		r := 0
		for _, v := range logits {
			if v > logits[m.A] {
				r++
			}
		}
		return float64(r)
	}
	return float64(logits[m.A])
}

// Grad is ∂metric/∂logits; the rank has none.
func (m Metric) Grad(classes int) ([]float32, error) {
	g := make([]float32, classes)
	switch m.Kind {
	case "logit_diff":
		g[m.A], g[m.B] = 1, -1
	case "logit":
		g[m.A] = 1
	default:
		return nil, errors.New("--attribution needs a differentiable metric: logit_diff:A,B or logit:A, not rank")
	}
	return g, nil
}

// Result is the metric with one site patched.
type Result struct {
	Site
	Metric float64
	// Recovered is (patched − corrupt)/(clean − corrupt): 1 when the patch
	// restores the clean metric, 0 when it changes nothing (NaN when clean
	// and corrupt agree).
	Recovered float64
}

// Source gives, per hook, the activation that replaces the corrupted one:
// the clean image's for ModePatch and ModeResample, a mean for ModeMean.
// ModeZero needs none.
type Source map[vit.Hook]*vit.Tensor

// Patcher runs the patched forwards of an experiment: the corrupted image
// once per site with the site's elements replaced by from's activation at
// its hook (zeros where from is nil: ModeZero), returning each run's
// logits. CPU (the pure-Go forward) is the reference; the GPU backend
// (package gpu) batches the sites.
type Patcher interface {
	PatchLogits(corrupt *vit.Tensor, sites []Site, from Source, edit vit.AttnEdit) ([][]float32, error)
}

// CPU patches on the pure-Go forward of Model, one forward per site with a
// hook that writes the replacement.
type CPU struct{ Model *vit.Model }

// PatchLogits implements Patcher.
func (p CPU) PatchLogits(corrupt *vit.Tensor, sites []Site, from Source, edit vit.AttnEdit) ([][]float32, error) {
	out := make([][]float32, 0, len(sites))
	for _, s := range sites {
		var src *vit.Tensor
		if from != nil {
			src = from[s.Hook]
		}
		var mismatch error
		fns := vit.HookFuncs{s.Hook: func(h vit.Hook, act *vit.Tensor) {
			if src != nil && len(src.Data) != len(act.Data) {
				mismatch = fmt.Errorf("%s: the replacement has %d values, the activation %v", h.Name(), len(src.Data), act.Shape)
				return
			}
			s.Elements(act.Shape, func(i int) {
				if src == nil {
					act.Data[i] = 0
				} else {
					act.Data[i] = src.Data[i]
				}
			})
		}}
		tr, err := p.Model.Forward(corrupt, vit.Options{Hooks: fns, Edit: edit})
		if err == nil {
			err = mismatch
		}
		if err != nil {
			return nil, err
		}
		out = append(out, tr.Logits)
	}
	return out, nil
}

// Run is one activation-patching experiment.
type Run struct {
	Model  *vit.Model
	Metric Metric
	Mode   Mode
	Edit   vit.AttnEdit
	// Patcher runs the patched forwards; nil is CPU{Model}.
	Patcher Patcher
}

// Cache runs pixels and copies the activation at each hook.
func (r Run) Cache(pixels *vit.Tensor, hooks []vit.Hook) (Source, []float32, error) {
	fns, cache := vit.CacheHooks(hooks)
	tr, err := r.Model.Forward(pixels, vit.Options{Hooks: fns, Edit: r.Edit})
	if err != nil {
		return nil, nil, err
	}
	return Source(cache), tr.Logits, nil
}

// Patch runs the corrupted image once per site with the site's elements
// replaced from src (ignored by ModeZero), and scores each. clean and
// corrupt are the unpatched metrics, for Recovered.
func (r Run) Patch(corrupt *vit.Tensor, sites []Site, src Source, clean, base float64) ([]Result, error) {
	var from Source
	if r.Mode != ModeZero {
		from = src
		for _, s := range sites {
			if from[s.Hook] == nil {
				return nil, fmt.Errorf("no %s activation at %s to patch in", r.Mode, s.Hook.Name())
			}
		}
	}
	p := r.Patcher
	if p == nil {
		p = CPU{r.Model}
	}
	logits, err := p.PatchLogits(corrupt, sites, from, r.Edit)
	if err != nil {
		return nil, err
	}
	out := make([]Result, len(sites))
	for i, s := range sites {
		v := r.Metric.Value(logits[i])
		out[i] = Result{Site: s, Metric: v, Recovered: (v - base) / (clean - base)}
	}
	return out, nil
}

// Attribution is attribution patching: for each site, Σ (a_clean −
// a_corrupt)·∂metric/∂a over the site's elements, the gradient taken at the
// corrupted image, from one forward and one backward pass.
func (r Run) Attribution(corrupt *vit.Tensor, sites []Site, clean, corrupted Source) ([]float64, error) {
	g, err := r.Metric.Grad(r.Model.Config.Classes)
	if err != nil {
		return nil, err
	}
	if r.Edit != vit.EditNone {
		return nil, errors.New("--attribution runs the unedited model: drop the attention edit")
	}
	var hooks []vit.Hook
	for _, s := range sites {
		if !slices.Contains(hooks, s.Hook) {
			hooks = append(hooks, s.Hook)
		}
	}
	_, grads, err := explain.HookGradients(r.Model, corrupt, g, hooks)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(sites))
	for i, s := range sites {
		gr, a, b := grads[s.Hook], clean[s.Hook], corrupted[s.Hook]
		if gr == nil || a == nil || b == nil {
			return nil, fmt.Errorf("no gradient or activation at %s", s.Hook.Name())
		}
		var sum float64
		s.Elements(gr.Shape, func(j int) {
			sum += (float64(a.Data[j]) - float64(b.Data[j])) * float64(gr.Data[j])
		})
		out[i] = sum
	}
	return out, nil
}

// Agreement compares attribution estimates with exact patching effects
// (patched − corrupt): Pearson correlation and the largest absolute
// difference.
func Agreement(estimate []float64, exact []Result, base float64) (pearson, maxDiff float64) {
	n := float64(len(estimate))
	var mx, my float64
	for i, e := range estimate {
		mx += e
		my += exact[i].Metric - base
	}
	mx, my = mx/n, my/n
	var sxy, sxx, syy float64
	for i, e := range estimate {
		dx, dy := e-mx, exact[i].Metric-base-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
		maxDiff = math.Max(maxDiff, math.Abs(e-(exact[i].Metric-base)))
	}
	return sxy / math.Sqrt(sxx*syy), maxDiff
}
