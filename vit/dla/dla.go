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
//
// Every model vitlens loads decomposes this way, each by freezing the
// scales that make its logit nonlinear: distilled DeiT's logit is the mean
// of two heads on two tokens, each through the final norm with its own σ; a
// head file that L2-normalises the embedding has ‖e‖ frozen as well; a
// mean-pooled model reads every token's mean; a post-norm block's LayerNorm
// on its update has its per-token scale frozen (see Compute).
package dla

import (
	"errors"
	"fmt"
	"math"
	"slices"

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
	Bias float64
	// Sigma is the frozen scale: the standard deviation (with eps) of the
	// final residual's row that is read; SigmaDist the distillation token's,
	// the second token a distilled DeiT's logit reads (0 otherwise).
	Sigma, SigmaDist float64
	// EmbedNorm is ‖e‖, frozen, for a head file that L2-normalises the
	// embedding e (0 otherwise): the logit is (Head(z) − b)/‖e‖ + b.
	EmbedNorm float64
	// BlockNorms says that each post-norm block's norm1 has its scale frozen
	// per token as well (see Compute).
	BlockNorms bool
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

// readout is one read of the final residual by the classifier: a weighted
// sum of token rows (one token's row, or the mean of all), through the final
// LayerNorm with its scale frozen, then one head row (times any factor frozen
// after the norm). A part that contributes v to that weighted sum adds
// Σ_i u_i (v_i − mean(v)) to the logit.
type readout struct {
	weights []float64 // per token
	u       []float64 // W_ci γ_i · scale / σ
	sigma   float64
}

// score is the readout's term of the logit for a part's weighted sum v.
func (r *readout) score(v []float64) float64 {
	mu := mean(v)
	var s float64
	for i, x := range v {
		s += r.u[i] * (x - mu)
	}
	return s
}

// readouts are the classifier's reads of the final residual x (n×D) for the
// target, with the head's bias term and the logit computed from them; token
// -1 reads the mean (a mean-pooled model). Distilled DeiT's [CLS] logit is
// the mean of head on [CLS] and head_dist on the distillation token, each
// token through the final norm with its own σ; a head file that normalises
// (EmbedNorm) has its ‖e‖ frozen too. Every other token is read through the
// lens's class embedding (m.Head, the two heads' mean for DeiT).
func readouts(m *vit.Model, x []float32, target, token int) (rs []readout, bias, logit, norm float64) {
	c := m.Config
	n, d := c.NumTokens(), c.Dim
	// read adds a readout of the rows weighted by weights through head's
	// target row times scale, and returns the normed vector it reads.
	read := func(weights []float64, head vit.Linear, scale float64) []float64 {
		v := combine(x, weights, d)
		mean, sigma := meanStd(v, float64(c.LNEps))
		r := readout{weights: weights, u: make([]float64, d), sigma: sigma}
		w := head.Row(target)
		normed := make([]float64, d)
		for i := range r.u {
			r.u[i] = scale * float64(w[i]) * float64(m.Norm.W[i]) / sigma
			normed[i] = (v[i]-mean)/sigma*float64(m.Norm.W[i]) + float64(m.Norm.B[i])
			bias += scale * float64(w[i]) * float64(m.Norm.B[i])
			logit += r.u[i] * (v[i] - mean)
		}
		if head.B != nil {
			bias += scale * float64(head.B[target])
		}
		rs = append(rs, r)
		return normed
	}
	onehot := func(t int) []float64 {
		w := make([]float64, n)
		w[t] = 1
		return w
	}
	switch {
	case token < 0:
		w := make([]float64, n)
		for t := range w {
			w[t] = 1 / float64(n)
		}
		norm = freezeEmbedNorm(m, rs, read(w, m.Head, 1), target, &bias, &logit)
	case c.DistToken && token == 0:
		read(onehot(0), m.HeadCLS, 0.5)
		read(onehot(1), m.HeadDist, 0.5)
	default:
		norm = freezeEmbedNorm(m, rs, read(onehot(token), m.Head, 1), target, &bias, &logit)
	}
	return rs, bias, logit + bias, norm
}

// freezeEmbedNorm applies a normalising head file's factor s = 1/‖e‖ (e the
// projection of the normed vector), frozen like σ: the logit is
// s·(Head_c(z) − b_c) + b_c, so every part scales by s and the bias term is
// s·(its value − b_c) + b_c. It returns ‖e‖, 0 without a normalising head.
func freezeEmbedNorm(m *vit.Model, rs []readout, normed []float64, target int, bias, logit *float64) float64 {
	en := m.Normalize
	if en == nil {
		return 0
	}
	p := en.Proj.Unpacked() // row-major, for this call only (the model holds it packed)
	var ss float64
	for e := 0; e < p.Out; e++ {
		v := float64(p.B[e])
		for i, w := range p.W[e*p.In : (e+1)*p.In] {
			v += float64(w) * normed[i]
		}
		ss += v * v
	}
	norm := math.Sqrt(ss)
	s := 1 / norm
	b := float64(en.ClassBias[target])
	for _, r := range rs {
		for i := range r.u {
			r.u[i] *= s
		}
	}
	*logit *= s
	*bias = s*(*bias-b) + b
	return norm
}

// combine is Σ_t weights[t]·a[t] over the rows of a (n×d), in float64.
func combine(a []float32, weights []float64, d int) []float64 {
	v := make([]float64, d)
	for t, w := range weights {
		if w == 0 {
			continue
		}
		for i, x := range a[t*d : (t+1)*d] {
			v[i] += w * float64(x)
		}
	}
	return v
}

// Compute runs one forward pass of pixels and attributes the target logit.
//
// In a post-norm block each update passes through its own LayerNorm before
// it joins the stream; with that norm's scale frozen too (σ₁ per token, at
// the update's own statistics) the attention update is still a sum of the
// heads' writes: LN₁(Σ_h W_O^h z_h + b_O) = Σ_h γ₁⊙(W_O^h z_h − mean)/σ₁ +
// (γ₁⊙(b_O − mean)/σ₁ + β₁), the last term counted as the block's attention
// bias. The MLP's update is one part, normed as it is.
func Compute(m *vit.Model, pixels *vit.Tensor, opt Options) (*Result, error) {
	c := m.Config
	token, err := readToken(c, opt)
	if err != nil {
		return nil, err
	}
	hooks := []vit.Hook{lastHook(c)}
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
	return attribute(m, func(h vit.Hook) []float32 { return cache[h].Data }, tr.Logits, token, opt), nil
}

// FromActivations is Compute on a forward pass already run: rec is what
// vit.Options.Record filled during an unedited forward of the whole image
// (the analysis's own, lens.Request.Record), whose recorded values are the
// hooks' (the last residual and a post-norm block's normed MLP update are
// remade from them by the forward's own operations). The result is
// Compute's on the same image, bit for bit.
func FromActivations(m *vit.Model, rec *vit.Activations, opt Options) (*Result, error) {
	c := m.Config
	token, err := readToken(c, opt)
	if err != nil {
		return nil, err
	}
	n, d := c.NumTokens(), c.Dim
	if rec == nil || len(rec.Tokens) != n || len(rec.Embed) != n*d || len(rec.Blocks) != c.Depth {
		return nil, errors.New("no recorded forward pass of the whole image")
	}
	for b, bt := range rec.Blocks {
		if len(bt.In) != n*d || len(bt.QKV) != 3*n*d || bt.Probs == nil || len(bt.Heads) != n*d ||
			len(bt.Mid) != n*d || len(bt.MLPOut) != n*d {
			return nil, fmt.Errorf("the recorded forward pass lacks block %d's activations", b)
		}
	}
	// mlpOut is hook_mlp_out: the fc2 output, normed by norm2 in a
	// post-norm block (as the forward does before its hook).
	mlpOut := func(b int) []float32 {
		u := rec.Blocks[b].MLPOut
		if !c.PostNorm {
			return u
		}
		normed := make([]float32, n*d)
		vit.LayerNorm(normed, u, n, d, m.Blocks[b].Norm2, c.LNEps)
		return normed
	}
	// The last residual: the last block's mid-stream plus its MLP update,
	// added as the forward adds it.
	last := slices.Clone(rec.Blocks[c.Depth-1].Mid)
	vit.Add(last, mlpOut(c.Depth-1))
	at := func(h vit.Hook) []float32 {
		switch h.Point {
		case vit.HookResidPost:
			return last
		case vit.HookResidPre:
			return rec.Blocks[0].In
		case vit.HookEmbed:
			return rec.Embed
		case vit.HookPosEmbed:
			return m.PosEmbed
		case vit.HookZ:
			return rec.Blocks[h.Block].Heads
		case vit.HookMLPOut:
			return mlpOut(h.Block)
		case vit.HookPattern:
			return rec.Blocks[h.Block].Probs.Data
		case vit.HookV: // the values' third of qkv, n×D
			return vit.QKVPart(rec.Blocks[h.Block].QKV, 2, n, d)
		}
		panic(fmt.Sprintf("dla: no recorded value for %s", h.Name()))
	}
	return attribute(m, at, rec.Logits, token, opt), nil
}

// readToken checks opt against c and returns the sequence position read
// (-1: the mean of all, for a mean-pooled model).
func readToken(c vit.Config, opt Options) (int, error) {
	if opt.Target < 0 || opt.Target >= c.Classes {
		return 0, fmt.Errorf("target class %d out of range 0..%d", opt.Target, c.Classes-1)
	}
	if c.Pool == vit.PoolMean {
		return -1, nil
	}
	if n := c.NumTokens(); opt.Token < 0 || opt.Token >= n {
		return 0, fmt.Errorf("token %d out of range 0..%d", opt.Token, n-1)
	}
	return opt.Token, nil
}

// lastHook is the final residual's hook point.
func lastHook(c vit.Config) vit.Hook { return vit.Hook{Point: vit.HookResidPost, Block: c.Depth - 1} }

// attribute splits the target's logit over the parts of the stream, whose
// values at reads at the hook points Compute lists (n×D each; the
// pattern H×n×n), given the forward's logits.
func attribute(m *vit.Model, at func(vit.Hook) []float32, logits []float32, token int, opt Options) *Result {
	c := m.Config
	n, d, dh := c.NumTokens(), c.Dim, c.HeadDim()
	rs, bias, logit, norm := readouts(m, at(lastHook(c)), opt.Target, token)
	res := &Result{Target: opt.Target, Token: token, Logit: logit, Bias: bias, Sigma: rs[0].sigma, EmbedNorm: norm, BlockNorms: c.PostNorm, Logits: logits}
	if len(rs) > 1 {
		res.SigmaDist = rs[1].sigma
	}
	add := func(k Kind, block, head, source int, logit float64) {
		res.Parts = append(res.Parts, Part{Kind: k, Block: block, Head: head, Source: source, Logit: logit})
	}
	// part adds a part whose weighted sum for readout i is v(i).
	part := func(k Kind, block, head int, v func(i int) []float64) {
		var s float64
		for i := range rs {
			s += rs[i].score(v(i))
		}
		add(k, block, head, -1, s)
	}
	rows := func(a []float32) func(i int) []float64 {
		return func(i int) []float64 { return combine(a, rs[i].weights, d) }
	}
	if c.NormPre {
		part(KindEmbed, -1, -1, rows(at(vit.Hook{Point: vit.HookResidPre})))
	} else {
		part(KindEmbed, -1, -1, rows(at(vit.Hook{Point: vit.HookEmbed})))
		part(KindPosEmbed, -1, -1, rows(at(vit.Hook{Point: vit.HookPosEmbed})))
	}
	for b := 0; b < c.Depth; b++ {
		blk := &m.Blocks[b]
		// W_O row-major, one block at a time (the model holds it packed).
		proj := blk.Proj.Unpacked()
		z := at(vit.Hook{Point: vit.HookZ, Block: b}) // n×H×dh rows are n×D
		// The attention update at token t enters the stream as
		// post(update)·kappa[t]: post-norm, post centres and scales by γ₁ and
		// kappa is 1/σ₁; pre-norm, both are the identity.
		kappa := make([]float64, n)
		post := func(v []float64) []float64 { return v }
		for t := range kappa {
			kappa[t] = 1
			if c.PostNorm {
				_, sigma := meanStd(affine(proj, z[t*d:(t+1)*d]), float64(c.LNEps))
				kappa[t] = 1 / sigma
			}
		}
		if c.PostNorm {
			post = func(v []float64) []float64 {
				mu := mean(v)
				for i := range v {
					v[i] = (v[i] - mu) * float64(blk.Norm1.W[i])
				}
				return v
			}
		}
		// scaled[i] are readout i's token weights times kappa; zr[i] the
		// heads' outputs summed with them.
		scaled := make([][]float64, len(rs))
		zr := make([][]float64, len(rs))
		for i, r := range rs {
			scaled[i] = make([]float64, n)
			for t, w := range r.weights {
				scaled[i][t] = w * kappa[t]
			}
			zr[i] = combine(z, scaled[i], d)
		}
		var pattern, values []float32
		if opt.BySource {
			pattern = at(vit.Hook{Point: vit.HookPattern, Block: b})
			values = at(vit.Hook{Point: vit.HookV, Block: b})
		}
		for h := 0; h < c.Heads; h++ {
			part(KindHead, b, h, func(i int) []float64 { return post(project(proj, zr[i], h, dh)) })
			if !opt.BySource {
				continue
			}
			// Source s's share: its value through W_O's head slice (and the
			// frozen block norm), times the attention every read token pays it.
			for s := 0; s < n; s++ {
				y := post(project(proj, toFloat64(values[s*d:(s+1)*d]), h, dh))
				var logit float64
				for i := range rs {
					var coef float64
					for t, w := range scaled[i] {
						coef += w * float64(pattern[(h*n+t)*n+s])
					}
					if coef != 0 {
						logit += coef * rs[i].score(y)
					}
				}
				add(KindHead, b, h, s, logit)
			}
		}
		part(KindAttnBias, b, -1, func(i int) []float64 {
			v := make([]float64, d)
			if blk.Proj.B != nil {
				v = post(toFloat64(blk.Proj.B))
			}
			var sw, sk float64
			for t, w := range rs[i].weights {
				sw += w
				sk += scaled[i][t]
			}
			for j := range v {
				v[j] *= sk
				if c.PostNorm {
					v[j] += sw * float64(blk.Norm1.B[j])
				}
			}
			return v
		})
		part(KindMLP, b, -1, rows(at(vit.Hook{Point: vit.HookMLPOut, Block: b})))
	}
	return res
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

// affine is W·x + b in float64 (a bias-free layer adds nothing).
func affine(l vit.Linear, x []float32) []float64 {
	out := make([]float64, l.Out)
	for i := range out {
		var s float64
		if l.B != nil {
			s = float64(l.B[i])
		}
		for j, w := range l.W[i*l.In : (i+1)*l.In] {
			s += float64(w) * float64(x[j])
		}
		out[i] = s
	}
	return out
}

func toFloat64(x []float32) []float64 {
	v := make([]float64, len(x))
	for i, f := range x {
		v[i] = float64(f)
	}
	return v
}

func mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// meanStd are a LayerNorm's statistics: the mean and √(var + eps).
func meanStd(x []float64, eps float64) (mu, sigma float64) {
	mu = mean(x)
	var vr float64
	for _, v := range x {
		vr += (v - mu) * (v - mu)
	}
	return mu, math.Sqrt(vr/float64(len(x)) + eps)
}

// Frozen names the scales frozen for this read and their values, in words.
func (r *Result) Frozen() string {
	s := fmt.Sprintf("final norm's σ = %.4f", r.Sigma)
	if r.SigmaDist != 0 {
		s = fmt.Sprintf("final norm's σ = %.4f at [CLS] and %.4f at the distillation token", r.Sigma, r.SigmaDist)
	}
	if r.EmbedNorm != 0 {
		s += fmt.Sprintf(", the head file's ‖e‖ = %.4f", r.EmbedNorm)
	}
	if r.BlockNorms {
		s += ", each post-norm block's norm1 per token"
	}
	return s
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
