// Package dla computes direct logit attribution: how much each part of the
// final residual stream (the embeddings, every attention head of every
// block, each block's attention output bias and every MLP) adds to one
// class's logit, read through the final LayerNorm with its scale frozen at
// the final residual's statistics.
//
// With the scale σ frozen, LN(x)·w_c is linear in x: the final residual is
// the sum of its parts, x = Σ p, and
//
//	logit_c = Σ_p Σ_i W_ci γ_i (p_i − mean(p))/σ + (W_c·β + b_c),
//
// so the parts plus the head's bias term equal the logit exactly (up to
// float rounding). The parts come from one forward pass through hooks
// (hook_embed, hook_pos_embed, attn.hook_z, hook_mlp_out).
package dla

import (
	"errors"
	"fmt"
	"math"

	"vitlens/vit"
)

// Kind names a part of the final residual stream.
type Kind string

const (
	KindEmbed    Kind = "embed"     // token embeddings (hook_embed); with norm_pre, the whole block-0 input
	KindPosEmbed Kind = "pos_embed" // position embeddings (hook_pos_embed)
	KindHead     Kind = "head"      // one attention head: its hook_z slice times its slice of the output projection
	KindAttnBias Kind = "attn_bias" // a block's output-projection bias
	KindMLP      Kind = "mlp"       // a block's MLP output (hook_mlp_out)
)

// Part is one part's contribution to the target's logit.
type Part struct {
	Kind  Kind
	Block int // -1 for the embeddings
	Head  int // -1 unless Kind is head
	// Source is the token of origin of a head's contribution (its value
	// vector, weighted by the attention), or -1 for the head's total.
	Source int
	Logit  float64
}

// Result is the attribution of one image's target logit.
type Result struct {
	Target int
	// Token is the sequence position read (the lens reads any; the model's
	// logit is [CLS]'s); -1 for a mean-pooled model, whose classifier reads
	// the mean of every token.
	Token int
	// Logit is the target's logit computed from the final residual the usual
	// way (final norm, head), in float64.
	Logit float64
	// Bias is W_c·β + b_c: the part no component of the stream carries.
	Bias  float64
	Sigma float64 // the frozen scale: the final residual's standard deviation
	// Logits is the model's output for the image (the forward's own).
	Logits []float32
	// Parts lists the embeddings, then per block its heads, its attention
	// bias and its MLP. Parts by token of origin (Source ≥ 0), when asked,
	// follow each head's total and sum to it.
	Parts []Part
}

// Options choose what is attributed.
type Options struct {
	Target int // class index
	// Token is the sequence position to read for a CLS model (0 is [CLS],
	// whose logit is the model's output).
	Token int
	// BySource also splits each head's contribution over its tokens of origin.
	BySource bool
}

// Check says whether the model's logits decompose into parts this way.
func Check(c vit.Config) error {
	switch {
	case c.PostNorm:
		return errors.New("direct logit attribution needs a pre-norm model: a post-norm block normalises each sublayer's output, so the stream is not a sum of heads")
	case c.DistToken:
		return errors.New("direct logit attribution of a distilled model (two tokens, two heads) is not implemented")
	}
	return nil
}

// Compute runs one forward pass of pixels and attributes the target logit.
func Compute(m *vit.Model, pixels *vit.Tensor, opt Options) (*Result, error) {
	c := m.Config
	if err := Check(c); err != nil {
		return nil, err
	}
	if opt.Target < 0 || opt.Target >= c.Classes {
		return nil, fmt.Errorf("target class %d out of range 0..%d", opt.Target, c.Classes-1)
	}
	n := c.NumTokens()
	token := opt.Token
	if c.Pool == vit.PoolMean {
		token = -1
	} else if token < 0 || token >= n {
		return nil, fmt.Errorf("token %d out of range 0..%d", token, n-1)
	}
	last := vit.Hook{Point: vit.HookResidPost, Block: c.Depth - 1}
	hooks := []vit.Hook{last}
	if c.NormPre {
		hooks = append(hooks, vit.Hook{Point: vit.HookResidPre})
	} else {
		hooks = append(hooks, vit.Hook{Point: vit.HookEmbed}, vit.Hook{Point: vit.HookPosEmbed})
	}
	for b := 0; b < c.Depth; b++ {
		hooks = append(hooks, vit.Hook{Point: vit.HookZ, Block: b}, vit.Hook{Point: vit.HookMLPOut, Block: b})
		if opt.BySource {
			hooks = append(hooks, vit.Hook{Point: vit.HookPattern, Block: b}, vit.Hook{Point: vit.HookV, Block: b})
		}
	}
	fns, cache := vit.CacheHooks(hooks)
	tr, err := m.Forward(pixels, vit.Options{Hooks: fns})
	if err != nil {
		return nil, err
	}
	d := c.Dim
	// read picks the vector the classifier reads from an n×D activation:
	// the chosen token's row, or the mean over tokens.
	read := func(a []float32) []float64 {
		v := make([]float64, d)
		if token >= 0 {
			for i := range v {
				v[i] = float64(a[token*d+i])
			}
			return v
		}
		for t := 0; t < n; t++ {
			for i := range v {
				v[i] += float64(a[t*d+i]) / float64(n)
			}
		}
		return v
	}
	final := read(cache[last].Data)
	mean, sigma := meanStd(final, float64(c.LNEps))
	// u_i = W_ci γ_i / σ: the frozen norm and the head row in one vector.
	w := m.Head.W[opt.Target*d : (opt.Target+1)*d]
	u := make([]float64, d)
	res := &Result{Target: opt.Target, Token: token, Sigma: sigma, Logits: tr.Logits}
	for i := range u {
		u[i] = float64(w[i]) * float64(m.Norm.W[i]) / sigma
		res.Bias += float64(w[i]) * float64(m.Norm.B[i])
		res.Logit += u[i] * (final[i] - mean)
	}
	if m.Head.B != nil {
		res.Bias += float64(m.Head.B[opt.Target])
	}
	res.Logit += res.Bias
	score := func(p []float64) float64 {
		var mu, s float64
		for _, v := range p {
			mu += v
		}
		mu /= float64(d)
		for i, v := range p {
			s += u[i] * (v - mu)
		}
		return s
	}
	add := func(k Kind, block, head, source int, p []float64) {
		res.Parts = append(res.Parts, Part{Kind: k, Block: block, Head: head, Source: source, Logit: score(p)})
	}
	if c.NormPre {
		add(KindEmbed, -1, -1, -1, read(cache[vit.Hook{Point: vit.HookResidPre}].Data))
	} else {
		add(KindEmbed, -1, -1, -1, read(cache[vit.Hook{Point: vit.HookEmbed}].Data))
		add(KindPosEmbed, -1, -1, -1, read(cache[vit.Hook{Point: vit.HookPosEmbed}].Data))
	}
	dh := c.HeadDim()
	for b := 0; b < c.Depth; b++ {
		blk := &m.Blocks[b]
		z := read(cache[vit.Hook{Point: vit.HookZ, Block: b}].Data) // n×H×dh rows are n×D
		for h := 0; h < c.Heads; h++ {
			add(KindHead, b, h, -1, project(blk.Proj, z, h, dh))
			if opt.BySource {
				p := cache[vit.Hook{Point: vit.HookPattern, Block: b}]
				v := cache[vit.Hook{Point: vit.HookV, Block: b}]
				for s := 0; s < n; s++ {
					zs := make([]float64, d)
					for t := 0; t < n; t++ {
						if token >= 0 && t != token {
							continue
						}
						a := float64(p.Data[(h*n+t)*n+s])
						if token < 0 {
							a /= float64(n)
						}
						for i := h * dh; i < (h+1)*dh; i++ {
							zs[i] += a * float64(v.Data[s*d+i])
						}
					}
					add(KindHead, b, h, s, project(blk.Proj, zs, h, dh))
				}
			}
		}
		bias := make([]float64, d)
		for i, v := range blk.Proj.B {
			bias[i] = float64(v)
		}
		add(KindAttnBias, b, -1, -1, bias)
		add(KindMLP, b, -1, -1, read(cache[vit.Hook{Point: vit.HookMLPOut, Block: b}].Data))
	}
	return res, nil
}

// project is head h's write into the stream: W_O[:, h·dh:(h+1)·dh]·z_h,
// where z holds the concatenated head outputs (D values).
func project(proj vit.Linear, z []float64, h, dh int) []float64 {
	out := make([]float64, proj.Out)
	for i := range out {
		row := proj.W[i*proj.In+h*dh : i*proj.In+(h+1)*dh]
		var s float64
		for j, w := range row {
			s += float64(w) * z[h*dh+j]
		}
		out[i] = s
	}
	return out
}

// meanStd are a LayerNorm's statistics: the mean and √(var + eps).
func meanStd(x []float64, eps float64) (mean, sigma float64) {
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	var vr float64
	for _, v := range x {
		vr += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(vr/float64(len(x)) + eps)
}

// Total sums the parts (heads' totals only, not their split by source)
// and the bias: it equals Logit.
func (r *Result) Total() float64 {
	s := r.Bias
	for _, p := range r.Parts {
		if p.Source < 0 {
			s += p.Logit
		}
	}
	return s
}

// HeadGrid returns the heads' contributions as blocks × heads.
func (r *Result) HeadGrid(c vit.Config) [][]float64 {
	g := make([][]float64, c.Depth)
	for b := range g {
		g[b] = make([]float64, c.Heads)
	}
	for _, p := range r.Parts {
		if p.Kind == KindHead && p.Source < 0 {
			g[p.Block][p.Head] = p.Logit
		}
	}
	return g
}

// SummaryFile is the name of a Summary in a dla output folder.
const SummaryFile = "dla.json"

// Summary is the mean attribution over several images, what `vitlens dla
// --out` writes as dla.json and `vitlens report` draws: the heads × blocks
// grid and every other part's mean share of the target logit.
type Summary struct {
	Images  []string `json:"images"`
	Targets []int    `json:"targets"` // each image's attributed class
	Token   int      `json:"token"`
	// Heads[b][h] is the mean share of block b's head h.
	Heads [][]float64 `json:"heads"`
	// AttnBias[b] and MLP[b] are block b's output-projection bias and MLP.
	AttnBias []float64 `json:"attn_bias"`
	MLP      []float64 `json:"mlp"`
	Embed    float64   `json:"embed"`
	PosEmbed float64   `json:"pos_embed"`
	Bias     float64   `json:"bias"`  // W_c·β + b_c
	Logit    float64   `json:"logit"` // the mean target logit: the sum of everything above
}

// Summarize averages the results of images (their names, in order).
func Summarize(c vit.Config, images []string, rs []*Result) *Summary {
	s := &Summary{Images: images, Heads: make([][]float64, c.Depth), AttnBias: make([]float64, c.Depth), MLP: make([]float64, c.Depth)}
	for b := range s.Heads {
		s.Heads[b] = make([]float64, c.Heads)
	}
	n := float64(len(rs))
	for _, r := range rs {
		s.Targets = append(s.Targets, r.Target)
		s.Token = r.Token
		s.Bias += r.Bias / n
		s.Logit += r.Logit / n
		for _, p := range r.Parts {
			if p.Source >= 0 {
				continue
			}
			v := p.Logit / n
			switch p.Kind {
			case KindHead:
				s.Heads[p.Block][p.Head] += v
			case KindAttnBias:
				s.AttnBias[p.Block] += v
			case KindMLP:
				s.MLP[p.Block] += v
			case KindEmbed:
				s.Embed += v
			case KindPosEmbed:
				s.PosEmbed += v
			}
		}
	}
	return s
}
