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
//   - A14: any CLS model works (any depth, heads, classes, patch grid), not
//     only B/32 and B/16; models without [CLS] (GAP) are refused, because
//     both maps are read from the [CLS] query row.
package explain

import (
	"errors"
	"fmt"
	"math"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// Options choose the loss of the paper's map.
type Options struct {
	// DoubleSoftmax reproduces the original code's loss
	// CE(softmax(o), c) = −log softmax(softmax(o))_c (spec A13).
	DoubleSoftmax bool
	// NoChefer skips the baseline (it costs a full backward pass).
	NoChefer bool
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
	// output of [CLS] projected into class space.
	Ours []float32
	// PerBlock[b] is block b's share (summed over heads) and PerHead[b][h]
	// the head-specific map of the paper's figures.
	PerBlock [][]float32
	PerHead  [][][]float32
	// Loss[b] is ℓ_b, the cross entropy the map differentiates.
	Loss []float32
	// Chefer is Chefer et al.'s relevance R[0, 1:] (nil with NoChefer).
	Chefer []float32
}

// Map explains target for one preprocessed image (Channels×ImageSize×
// ImageSize, as Preset.Apply returns). A negative target explains the
// model's own prediction. It is safe to call concurrently.
func Map(m *vit.Model, pixels *vit.Tensor, target int, opt Options) (*Maps, error) {
	c := m.Config
	if !c.ClassToken {
		return nil, errors.New("explain: the maps read the [CLS] query row; this model has no [CLS] token")
	}
	t, err := record(m, pixels)
	if err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	pred := lens.Argmax(t.logits)
	if target < 0 {
		target = pred
	}
	if target >= c.Classes {
		return nil, fmt.Errorf("explain: target class %d out of range (model has %d classes)", target, c.Classes)
	}
	mp := &Maps{Target: target, Pred: pred, Logits: t.logits, Grid: c.GridSize()}
	first, P := c.FirstImageToken(), c.NumPatches()
	mp.Ours = make([]float32, P)
	for b := range m.Blocks {
		g, loss := clsAttentionGrad(t, b, target, opt.DoubleSoftmax)
		mp.Loss = append(mp.Loss, loss)
		blockMap := make([]float32, P)
		heads := make([][]float32, c.Heads)
		for h := range heads {
			heads[h] = make([]float32, P)
			for p := range P {
				v := -g[h*t.n+first+p]
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
// block b, in closed form. With the [CLS] row o = concat_h(A_h[0,:]·V_h),
// u = o·W_projᵀ + b_proj, the attention output a = u (or LN1(u) for a
// post-norm block), logits = E·LN(a) + β and ℓ = CE(logits, target):
//
//	∂ℓ/∂A_h[0,k] = ⟨∂ℓ/∂o_h, V_h[k]⟩
//
// where ∂ℓ/∂o comes from softmax−onehot through the head, the final
// LayerNorm (fresh statistics of a), the post-norm if any, and W_proj.
// Nothing else depends on block b's [CLS] row, so no full backward is needed.
func clsAttentionGrad(t *tape, b int, target int, doubleSoftmax bool) (grad []float32, loss float32) {
	m, c := t.m, t.m.Config
	d, n, dh := c.Dim, t.n, c.HeadDim()
	blk := &m.Blocks[b]
	bt := &t.blocks[b]
	u := bt.u[:d] // row 0
	a := u
	if c.PostNorm {
		a = make([]float32, d)
		vit.LayerNorm(a, u, 1, d, blk.Norm1, c.LNEps)
	}
	z := make([]float32, d)
	vit.LayerNorm(z, a, 1, d, m.Norm, c.LNEps)
	logits := make([]float32, c.Classes)
	vit.LinearForward(logits, z, 1, m.Head)
	gLogits, loss := crossEntropyGrad(logits, target, doubleSoftmax)
	g := make([]float32, d)
	LinearBackward(g, gLogits, 1, m.Head)
	LayerNormBackward(g, g, a, 1, d, m.Norm, c.LNEps)
	if c.PostNorm {
		LayerNormBackward(g, g, u, 1, d, blk.Norm1, c.LNEps)
	}
	gO := make([]float32, d)
	LinearBackward(gO, g, 1, blk.Proj)
	grad = make([]float32, c.Heads*n)
	for h := 0; h < c.Heads; h++ {
		gh := gO[h*dh : (h+1)*dh]
		for k := 0; k < n; k++ {
			v := bt.qkv[k*3*d+2*d+h*dh : k*3*d+2*d+(h+1)*dh]
			grad[h*n+k] = float32(dot64(gh, v))
		}
	}
	return grad, loss
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
	gProbs, gEmbed = t.backward(g)
	return gProbs, gEmbed, nil
}

// chefer computes Chefer et al.'s relevance of the image tokens for [CLS]:
// Ā_b = mean_h clamp≥0(∇A_b y_c ⊙ A_b), R ← R + Ā_b·R from R = I over the
// blocks in order, relevance = R[0, image tokens].
func chefer(t *tape, target int) []float32 {
	c := t.m.Config
	n := t.n
	g := make([]float32, c.Classes)
	g[target] = 1
	gProbs, _ := t.backward(g)
	r := make([]float64, n*n)
	for i := 0; i < n; i++ {
		r[i*n+i] = 1
	}
	cam := make([]float64, n*n)
	next := make([]float64, n*n)
	for b := range gProbs {
		clear(cam)
		a, ga := t.blocks[b].probs.Data, gProbs[b].Data
		for i := range a {
			if v := float64(ga[i]) * float64(a[i]); v > 0 {
				cam[i%(n*n)] += v
			}
		}
		for i := range cam {
			cam[i] /= float64(c.Heads)
		}
		// R ← R + Ā·R
		copy(next, r)
		for i := 0; i < n; i++ {
			for k := 0; k < n; k++ {
				w := cam[i*n+k]
				if w == 0 {
					continue
				}
				for j := 0; j < n; j++ {
					next[i*n+j] += w * r[k*n+j]
				}
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
