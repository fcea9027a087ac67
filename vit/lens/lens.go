// Package lens projects hidden states into class-embedding space through a
// model's own final LayerNorm and classifier head, and reads out how
// identifiable a target class is: its 0-based rank, the top-k classes and its
// logit, per token, block and site.
package lens

import (
	"vitlens/vit"
)

// Projector maps D-dimensional vectors to class logits p = E·LN(h) + β with
// fresh LN statistics per vector (the paper's projection, spec §3.2).
//
// It folds the LN affine into the head once: with E' = E·diag(w),
// s = E'·1 and β' = E·b + β,
//
//	p = (E'·h − μ(h)·s) / σ(h) + β'.
//
// E'·h is linear in h, so along the residual stream the projections add up
// like the vectors do (hs_mid = hs_prev + attn, hs = hs_mid + mlp): the lens
// only needs two matmuls per block (attn and mlp) instead of four.
type Projector struct {
	Classes, Dim int
	EW           []float32 // E' = E·diag(w), Classes×Dim
	S            []float32 // E'·1
	Bias         []float32 // E·b + β
	model        *vit.Model
	ew           *vit.PackedT // EW packed for the CPU GEMM
}

// NewProjector precomputes the folded head of m.
func NewProjector(m *vit.Model) *Projector {
	c, d := m.Config.Classes, m.Config.Dim
	p := &Projector{Classes: c, Dim: d, EW: make([]float32, c*d), S: make([]float32, c),
		Bias: make([]float32, c), model: m}
	head := m.Head.Weights()
	for k := 0; k < c; k++ {
		e := head[k*d : (k+1)*d]
		var s, b float64
		for i := range e {
			p.EW[k*d+i] = e[i] * m.Norm.W[i]
			s += float64(p.EW[k*d+i])
			b += float64(e[i]) * float64(m.Norm.B[i])
		}
		p.S[k] = float32(s)
		p.Bias[k] = float32(b) + m.Head.B[k]
	}
	p.ew = vit.PackT(p.EW, c, d)
	return p
}

// Direct projects n vectors the obvious way, LN then head: the slow twin
// that tests the folded path.
func (p *Projector) Direct(h []float32, n int) []float32 {
	m := p.model
	normed := make([]float32, len(h))
	vit.LayerNorm(normed, h, n, p.Dim, m.Norm, m.Config.LNEps)
	out := make([]float32, n*p.Classes)
	m.LinearForward(out, normed, n, m.Head)
	m.NormalizeLogits(out, normed, n)
	return out
}

// NormScales returns the normalisation's per-vector factor for n vectors h
// (vit.Model.EmbedScales of their final-norm outputs), nil when the model
// does not normalise.
func (p *Projector) NormScales(h []float32, n int) []float64 {
	m := p.model
	if m.Normalize == nil {
		return nil
	}
	normed := make([]float32, len(h))
	vit.LayerNorm(normed, h, n, p.Dim, m.Norm, m.Config.LNEps)
	return m.EmbedScales(normed, n)
}

// Raw computes Z = E'·h for n vectors (n×Classes), the linear part, into
// dst (reused when large enough).
func (p *Projector) Raw(dst, h []float32, n int) []float32 {
	if cap(dst) < n*p.Classes {
		dst = make([]float32, n*p.Classes)
	}
	dst = dst[:n*p.Classes]
	p.ew.MatMulT(dst, h, n, nil, false)
	return dst
}

// FinishRow turns one vector's raw row z (Classes long) into its logits in
// dst, given the vector h itself for its LN statistics: (z − μ·s)/σ + β'.
// Where the CPU has AVX2 it is z·(1/σ) + (s·(−μ/σ) + β') in float32 FMAs:
// the rounding it adds, a float32 ulp of z/σ and of μ·s/σ, is of the size
// the float32 product z = E'·h already has (the float64 loop below is its
// twin).
func (p *Projector) FinishRow(dst, z, h []float32) {
	mean, inv := vit.NormStats(h, p.model.Config.LNEps)
	done := finishVector(dst[:len(z)], z, p.S, p.Bias, float32(inv), float32(-mean*inv))
	for k := done; k < len(z); k++ {
		dst[k] = float32((float64(z[k])-mean*float64(p.S[k]))*inv) + p.Bias[k]
	}
}

// Rank is the 0-based position of class target among logits sorted in
// descending order: the number of classes with a strictly larger logit. (An
// argsort would break exact ties arbitrarily; counting is deterministic.)
func Rank(logits []float32, target int) int {
	lt := logits[target]
	r := 0
	for _, v := range logits {
		if v > lt {
			r++
		}
	}
	return r
}

// TopK writes the indices of the k largest logits, largest first, ties broken
// by the lower class index, into dst (len k). After the first k, only a
// logit above the current k-th enters: firstAbove skips to the next one.
func TopK(dst []int32, logits []float32) {
	k := len(dst)
	n := min(k, len(logits))
	for c := range n {
		insertTop(dst[:c+1], logits, c)
	}
	for i := n; i < k; i++ {
		dst[i] = -1 // fewer classes than k
	}
	if n < k {
		return
	}
	for c := k; c < len(logits); c++ {
		c += firstAbove(logits[c:], logits[dst[k-1]])
		if c < len(logits) {
			insertTop(dst, logits, c)
		}
	}
}

// insertTop puts class c in its place in top (sorted best first, its last
// entry given up), after every class of an equal logit.
func insertTop(top []int32, logits []float32, c int) {
	v := logits[c]
	i := len(top) - 1
	for i > 0 && v > logits[top[i-1]] {
		top[i] = top[i-1]
		i--
	}
	top[i] = int32(c)
}

// Argmax is the index of the largest value, the lowest index among ties:
// the model's top-1 prediction.
func Argmax[T float32 | float64](v []T) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// Identifiability is 1 − rank/C: 1 for top-1, about 0.5 at chance.
func Identifiability(rank, classes int) float64 { return 1 - float64(rank)/float64(classes) }
