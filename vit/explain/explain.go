// Package explain computes the paper's explainability maps (spec §3.9): the
// gradient of each block's class-space cross entropy with respect to that
// block's own attention, and the baseline of Chefer et al. (gradient-weighted
// attention rollout). It also runs the token-removal (perturbation) test
// that compares them, and renders heat-map overlays.
//
// Everything is plain Go on the pure-Go forward pass: the paper's map has a
// closed form per block (each block's loss depends only on its own attention
// row), and Chefer's baseline uses the backward pass of the ViT ops written
// out in backward.go. Both are checked against torch autograd on the
// reference fixtures (testdata/explain, tools/reference/make_explain_golden.py).
//
// This package depends on vit alone, so the web app can link it into wasm;
// the dataset runs that write results folders live in explain/batch.
//
// # Deviations from the original code
//
//   - A13: the original applies softmax to the projected logits before
//     torch's CrossEntropyLoss, i.e. a double softmax. The default here is
//     the plain cross entropy of the logits; Options.DoubleSoftmax gives the
//     original's loss.
//   - The original's other variants (spec §3.9, never in its figures) are
//     options: Objective CatProb scores the target's projected logit instead
//     of the cross entropy, Input KeyProjVals differentiates with respect to
//     the concatenated head outputs instead of the attention (see Input for
//     how that becomes a map over tokens). CatProb uses the explained
//     target; the original's cat_prob always used the image's label.
//   - A14: any CLS model works (any depth, heads, classes, patch grid), not
//     only B/32 and B/16; models without [CLS] (GAP) are refused, because
//     both maps are read from the [CLS] query row.
//   - Beyond the paper's models (docs/method.md): on distilled DeiT the
//     paper's map projects [CLS]'s attention output through the lens's class
//     embedding (the mean of head and head_dist), and Chefer's gradient
//     follows the model's output, which reads both [CLS] and the
//     distillation token; its relevance is still [CLS]'s row. Registers and
//     the distillation token are not image tokens: the maps cover the
//     patches only. The backward pass differentiates every MLP activation
//     vitlens runs (exact GELU, gelu_tanh, quick_gelu), and a --head file is
//     part of the class embedding like the model's own head.
package explain

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// Objective is what the class-space projection of a block's attention
// output is scored by; the map is −∂ℓ/∂(input), so larger is more
// important for either.
type Objective string

const (
	// CrossEntropy: ℓ = CE(o, c), the paper's map (grad_type
	// 'cross_entropy').
	CrossEntropy Objective = "cross_entropy"
	// CatProb: ℓ = −o[c], the projected logit of the target itself (the
	// original's grad_type 'cat_prob', which differentiates +o[c]: the map
	// keeps the sign that makes important tokens large).
	CatProb Objective = "cat_prob"
)

// Input is what the objective is differentiated with respect to.
type Input string

const (
	// AttnProbs: the post-softmax attention of the [CLS] query row, one
	// value per (head, key token): the paper's map.
	AttnProbs Input = "attn_probs"
	// KeyProjVals: the concatenated head outputs o_t = concat_h(A_h[t,:]·V_h)
	// (the original's key_proj_vals), before the out-projection. The
	// original takes, for every token t, the gradient of token t's own
	// objective with respect to its own o_t (a D-vector); the map sums it
	// over the features, as the original's accumulation sums the attention
	// gradient over heads: map[t] = −Σ_b Σ_i ∂ℓ_t^b/∂o_t^b[i], and head h's
	// map sums head h's dh features.
	KeyProjVals Input = "key_proj_vals"
)

// Objectives and Inputs list the accepted values, for flags and messages.
var (
	Objectives = []Objective{CrossEntropy, CatProb}
	Inputs     = []Input{AttnProbs, KeyProjVals}
)

// Options choose the loss of the paper's map. The zero value is the paper's
// map with the plain cross entropy.
type Options struct {
	// DoubleSoftmax reproduces the original code's loss
	// CE(softmax(o), c) = −log softmax(softmax(o))_c (spec A13). Only with
	// the cross entropy.
	DoubleSoftmax bool
	// Objective and Input choose the original's gradient variant; "" means
	// CrossEntropy and AttnProbs.
	Objective Objective
	Input     Input
	// NoChefer skips the baseline (it costs a full backward pass).
	NoChefer bool
}

// Validate names the first option that cannot be used.
func (o Options) Validate() error {
	if o.Objective != "" && !slices.Contains(Objectives, o.Objective) {
		return fmt.Errorf("unknown objective %q (want %s or %s)", o.Objective, CrossEntropy, CatProb)
	}
	if o.Input != "" && !slices.Contains(Inputs, o.Input) {
		return fmt.Errorf("unknown gradient input %q (want %s or %s)", o.Input, AttnProbs, KeyProjVals)
	}
	if o.DoubleSoftmax && o.Objective == CatProb {
		return errors.New("the double softmax (spec A13) applies to the cross entropy only, not to the cat_prob objective")
	}
	return nil
}

// Maps holds the explanations of one image for one target class. Every map
// has one value per image token (patch p is token FirstImageToken+p), in
// row-major patch order, Grid×Grid; larger means more important.
type Maps struct {
	Target int       // the explained class
	Pred   int       // the model's top-1
	Logits []float32 // the model's output
	Grid   int       // patches per side
	// Ours is the paper's map: −Σ_b Σ_h ∂ℓ_b/∂A_{b,h}[0, k] over the image
	// tokens k, where ℓ_b is the cross entropy of the block-b attention
	// output of [CLS] projected into class space (or the variant that
	// Options.Objective and Options.Input choose).
	Ours []float32
	// PerBlock[b] is block b's share (summed over heads) and PerHead[b][h]
	// the head-specific map of the paper's figures.
	PerBlock [][]float32
	PerHead  [][][]float32
	// Loss[b] is ℓ_b of the [CLS] token, the objective the map
	// differentiates (−o[c] for CatProb).
	Loss []float32
	// Chefer is Chefer et al.'s relevance R[0, 1:] (nil with NoChefer).
	Chefer []float32
}

// Map explains target for one preprocessed image (Channels×ImageSize×
// ImageSize, as Preset.Apply returns). A negative target explains the
// model's own prediction. It is safe to call concurrently.
func Map(m *vit.Model, pixels *vit.Tensor, target int, opt Options) (*Maps, error) {
	if err := canMap(m, opt); err != nil {
		return nil, err
	}
	t, err := record(m, pixels)
	if err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	return t.maps(target, opt)
}

// MapRecorded is Map on a forward pass the caller has run already: rec is
// what vit.Options.Record filled during an unedited forward of the whole
// image (no edit, no dropped token), such as the lens's own forward
// (lens.Request.Record), so that an analysis with explanations runs the
// model once. The maps are Map's on the same image, bit for bit.
func MapRecorded(m *vit.Model, rec *vit.Activations, target int, opt Options) (*Maps, error) {
	if err := canMap(m, opt); err != nil {
		return nil, err
	}
	t, err := replay(m, rec)
	if err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	return t.maps(target, opt)
}

// canMap says why m cannot be explained with opt, or nil.
func canMap(m *vit.Model, opt Options) error {
	if !m.Config.ClassToken {
		return errors.New("explain: the maps read the [CLS] query row; this model has no [CLS] token")
	}
	if err := opt.Validate(); err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	return nil
}

// maps computes the explanations from the tape.
func (t *tape) maps(target int, opt Options) (*Maps, error) {
	m, c := t.m, t.m.Config
	pred := lens.Argmax(t.Logits)
	if target < 0 {
		target = pred
	}
	if target >= c.Classes {
		return nil, fmt.Errorf("explain: target class %d out of range (model has %d classes)", target, c.Classes)
	}
	mp := &Maps{Target: target, Pred: pred, Logits: t.Logits, Grid: c.GridSize()}
	first, P, dh := c.FirstImageToken(), c.NumPatches(), c.HeadDim()
	mp.Ours = make([]float32, P)
	for b := range m.Blocks {
		// head(h, p) is head h's map value (a negated gradient) for image token p.
		var head func(h, p int) float32
		var loss float32
		if opt.Input == KeyProjVals {
			g, losses := headOutputGrads(t, b, t.n, target, opt)
			head = func(h, p int) float32 {
				row := g[(first+p)*c.Dim+h*dh:]
				return float32(-sum64(row[:dh]))
			}
			loss = losses[0]
		} else {
			var g []float32
			g, loss = clsAttentionGrad(t, b, target, opt)
			head = func(h, p int) float32 { return -g[h*t.n+first+p] }
		}
		mp.Loss = append(mp.Loss, loss)
		blockMap := make([]float32, P)
		heads := make([][]float32, c.Heads)
		for h := range heads {
			heads[h] = make([]float32, P)
			for p := range P {
				v := head(h, p)
				heads[h][p] = v
				blockMap[p] += v
			}
		}
		for p, v := range blockMap {
			mp.Ours[p] += v
		}
		mp.PerBlock = append(mp.PerBlock, blockMap)
		mp.PerHead = append(mp.PerHead, heads)
	}
	if !opt.NoChefer {
		mp.Chefer = chefer(t, target)
	}
	return mp, nil
}

// clsAttentionGrad returns ∂ℓ_b/∂A_b[h, 0, k] (H×n, head-major) and ℓ_b for
// block b, in closed form. With the [CLS] row o = concat_h(A_h[0,:]·V_h):
//
//	∂ℓ/∂A_h[0,k] = ⟨∂ℓ/∂o_h, V_h[k]⟩
//
// where ∂ℓ/∂o is headOutputGrads' row 0. Nothing else depends on block b's
// [CLS] row, so no full backward is needed.
func clsAttentionGrad(t *tape, b int, target int, opt Options) (grad []float32, loss float32) {
	c := t.m.Config
	d, n, dh := c.Dim, t.n, c.HeadDim()
	bt := &t.Blocks[b]
	gO, losses := headOutputGrads(t, b, 1, target, opt)
	grad = make([]float32, c.Heads*n)
	for h := 0; h < c.Heads; h++ {
		gh := gO[h*dh : (h+1)*dh]
		for k := 0; k < n; k++ {
			v := bt.QKV[k*3*d+2*d+h*dh : k*3*d+2*d+(h+1)*dh]
			grad[h*n+k] = float32(dot64(gh, v))
		}
	}
	return grad, losses[0]
}

// headOutputGrads returns, for the first rows tokens t of block b,
// ∂ℓ_t/∂o_t (rows×D, the original's key_proj_vals gradient) and ℓ_t, where
// o_t is token t's concatenated head outputs and ℓ_t the objective of its
// attention output projected into class space. With u = o·W_projᵀ + b_proj,
// the attention output a = u (or LN1(u) for a post-norm block) and
// logits = E·LN(a) + β, ∂ℓ/∂o comes from the objective's gradient through
// the head, the final LayerNorm (fresh statistics of a), the post-norm if
// any, and W_proj. Each row depends on its own token only.
func headOutputGrads(t *tape, b, rows, target int, opt Options) (gO []float32, loss []float32) {
	m, c := t.m, t.m.Config
	d, C := c.Dim, c.Classes
	blk := &m.Blocks[b]
	u := t.Blocks[b].AttnOut[:rows*d]
	a := u
	if c.PostNorm {
		a = make([]float32, rows*d)
		vit.LayerNorm(a, u, rows, d, blk.Norm1, c.LNEps)
	}
	z := make([]float32, rows*d)
	vit.LayerNorm(z, a, rows, d, m.Norm, c.LNEps)
	logits := make([]float32, rows*C)
	m.LinearForward(logits, z, rows, m.Head)
	m.NormalizeLogits(logits, z, rows)
	gLogits := make([]float32, rows*C)
	loss = make([]float32, rows)
	for r := range rows {
		var g []float32
		g, loss[r] = objectiveGrad(logits[r*C:(r+1)*C], target, opt)
		copy(gLogits[r*C:], g)
	}
	g := make([]float32, rows*d)
	HeadBackward(m, g, gLogits, z, rows)
	LayerNormBackward(g, g, a, rows, d, m.Norm, c.LNEps)
	if c.PostNorm {
		LayerNormBackward(g, g, u, rows, d, blk.Norm1, c.LNEps)
	}
	gO = make([]float32, rows*d)
	LinearBackward(gO, g, rows, blk.Proj)
	return gO, loss
}

// objectiveGrad returns ∂ℓ/∂logits and ℓ for the objective opt chooses.
func objectiveGrad(logits []float32, c int, opt Options) ([]float32, float32) {
	if opt.Objective == CatProb {
		g := make([]float32, len(logits))
		g[c] = -1
		return g, -logits[c]
	}
	return crossEntropyGrad(logits, c, opt.DoubleSoftmax)
}

// crossEntropyGrad returns ∂ℓ/∂logits and ℓ for ℓ = −log softmax(logits)_c,
// or, doubleSoftmax, ℓ = −log softmax(softmax(logits))_c (the original's).
func crossEntropyGrad(logits []float32, c int, doubleSoftmax bool) ([]float32, float32) {
	p := softmax64(logits)
	if !doubleSoftmax {
		g := make([]float32, len(p))
		for i, v := range p {
			g[i] = float32(v)
		}
		g[c]--
		return g, float32(-math.Log(p[c]))
	}
	p32 := make([]float32, len(p))
	for i, v := range p {
		p32[i] = float32(v)
	}
	q := softmax64(p32)
	// ∂ℓ/∂p = q − onehot; then back through the first softmax.
	g := make([]float32, len(p))
	for i, v := range q {
		g[i] = float32(v)
	}
	g[c]--
	SoftmaxBackward(g, p32)
	return g, float32(-math.Log(q[c]))
}

func softmax64(x []float32) []float64 {
	mx := x[0]
	for _, v := range x {
		mx = max(mx, v)
	}
	out := make([]float64, len(x))
	var sum float64
	for i, v := range x {
		out[i] = math.Exp(float64(v - mx))
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// LogitAttentionGrads returns ∂y_target/∂A_b for every block b (H×n×n, the
// full post-softmax attention) and ∂y_target/∂(block-0 input) (n×D), where y
// is the model's final logit: the gradients Chefer et al.'s rollout weighs
// attention with. It works for every architecture, GAP included.
func LogitAttentionGrads(m *vit.Model, pixels *vit.Tensor, target int) (gProbs []*vit.Tensor, gEmbed []float32, err error) {
	if target < 0 || target >= m.Config.Classes {
		return nil, nil, fmt.Errorf("explain: target class %d out of range (model has %d classes)", target, m.Config.Classes)
	}
	t, err := record(m, pixels)
	if err != nil {
		return nil, nil, fmt.Errorf("explain: %w", err)
	}
	g := make([]float32, m.Config.Classes)
	g[target] = 1
	gProbs, gEmbed = t.backward(g, nil, false)
	return gProbs, gEmbed, nil
}

// chefer computes Chefer et al.'s relevance of the image tokens for [CLS]:
// Ā_b = mean_h clamp≥0(∇A_b y_c ⊙ A_b), R ← R + Ā_b·R from R = I over the
// blocks in order, relevance = R[0, image tokens]. Only R's first row is
// read, and R = (I+Ā_L)…(I+Ā_1), so the row is carried from the left
// instead: r ← r + r·Ā_b from r = e_0 over the blocks in reverse, n² per
// block where the whole R cost n³ (a tenth of a B/16 explanation). The
// backward stops at block 0's attention, the last gradient the rollout
// reads.
func chefer(t *tape, target int) []float32 {
	c := t.m.Config
	n := t.n
	g := make([]float32, c.Classes)
	g[target] = 1
	gProbs, _ := t.backward(g, nil, true)
	r := make([]float64, n)
	r[0] = 1
	row := make([]float64, n) // row k of Ā_b, times H
	next := make([]float64, n)
	var all []float64 // all of Ā_b times H, where rolloutRowsKernel runs
	for b := len(gProbs) - 1; b >= 0; b-- {
		a, ga := t.Blocks[b].Probs.Data, gProbs[b].Data
		// r ← r + r·Ā, building only the rows of Ā that r weighs (the
		// last block's: [CLS]'s alone), or, below the last block, where r
		// weighs every row, all of them at once in the kernel.
		whole := false
		if b < len(gProbs)-1 && rolloutRowsKernel != nil {
			if all == nil {
				all = make([]float64, n*n)
			}
			whole = rolloutRowsKernel(all, ga, a, n, c.Heads)
		}
		copy(next, r)
		for k, w := range r {
			if w == 0 {
				continue
			}
			rk := row
			if whole {
				rk = all[k*n : (k+1)*n]
			} else {
				rolloutRow(row, ga, a, k, n, c.Heads)
			}
			for j, v := range rk {
				next[j] += w * (v / float64(c.Heads))
			}
		}
		r, next = next, r
	}
	first := c.FirstImageToken()
	out := make([]float32, c.NumPatches())
	for p := range out {
		out[p] = float32(r[first+p])
	}
	return out
}

// rolloutRow writes row k of Σ_h max(0, ∂L/∂A_h ⊙ A_h) (H×n×n, head-major),
// the heads summed in order in float64.
func rolloutRow(row []float64, ga, a []float32, k, n, heads int) {
	row = row[:n]
	clear(row)
	for h := range heads {
		off := (h*n + k) * n
		for j, p := range a[off : off+n] {
			if v := float64(ga[off+j]) * float64(p); v > 0 {
				row[j] += v
			}
		}
	}
}

// rolloutRowsKernel computes every row of rolloutRow at once where the
// platform has a kernel for it (the browser's threaded module, rows shared
// among its threads: the rollout was a Go loop on the engine's one thread);
// rolloutRow is its twin, bit for bit.
var rolloutRowsKernel = vit.RolloutRows
