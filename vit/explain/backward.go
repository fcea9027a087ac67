package explain

import (
	"math"

	"vitlens/vit"
)

// Backward passes of the ViT ops, one plain function per op, each the
// vector-Jacobian product of the forward op of the same name in vit/ops.go.
// They return gradients with respect to activations only: explanations
// never need weight gradients. Reductions run in float64, like the forward
// oracle, so that the comparison with torch autograd measures the method
// and not accumulation noise.

// LayerNormBackward writes gx = ∂L/∂x for rows vectors of width d, given
// gy = ∂L/∂y and the forward input x (statistics are recomputed: fresh per
// vector, as in the forward). With x̂ = (x−μ)/σ and ĝ = gy ⊙ w,
//
//	gx = (ĝ − mean(ĝ) − x̂·mean(ĝ ⊙ x̂)) / σ.
//
// gx may alias gy. Where the platform has a kernel for it (the browser's
// threaded module) rows at a time run there (layerNormBackwardKernel).
func LayerNormBackward(gx, gy, x []float32, rows, d int, n vit.Norm, eps float32) {
	if rows >= normBackwardKernelRows && layerNormBackwardKernel(gx, gy, x, n.W, rows, d, eps) {
		return
	}
	layerNormBackwardLoop(gx, gy, x, rows, d, n, eps)
}

// layerNormBackwardKernel runs LayerNormBackward where the platform has a
// kernel for it (the browser's threaded module, rows shared among its
// threads: the loop ran on the engine's one Go thread); layerNormBackwardLoop
// is its twin, bit for bit.
var layerNormBackwardKernel = vit.LayerNormBackwardRows

// normBackwardKernelRows is the fewest rows worth the kernel's call and
// copies: the per-block maps' single [CLS] rows stay in Go.
const normBackwardKernelRows = 8

// layerNormBackwardLoop is LayerNormBackward in Go.
func layerNormBackwardLoop(gx, gy, x []float32, rows, d int, n vit.Norm, eps float32) {
	xh := make([]float64, d)
	gh := make([]float64, d)
	for r := 0; r < rows; r++ {
		xr := x[r*d : (r+1)*d]
		mean, inv := vit.NormStats(xr, eps)
		var mg, mgx float64
		for i, v := range xr {
			xh[i] = (float64(v) - mean) * inv
			gh[i] = float64(gy[r*d+i]) * float64(n.W[i])
			mg += gh[i]
			mgx += gh[i] * xh[i]
		}
		mg /= float64(d)
		mgx /= float64(d)
		for i := range xr {
			gx[r*d+i] = float32((gh[i] - mg - xh[i]*mgx) * inv)
		}
	}
}

// LinearBackward writes gx = gy·W for rows vectors: the input gradient of
// y = x·Wᵀ + B (W is Out×In), through vit.Linear.MatMul: the forward's GEMM
// on the layer's panels, transposed block by block.
func LinearBackward(gx, gy []float32, rows int, l vit.Linear) {
	l.MatMul(gx, gy, rows)
}

// HeadBackward writes gz = ∂L/∂z for rows normed vectors z (the final
// norm's output), given gLogits = ∂L/∂logits, through the model's head and,
// when the model has one, its embedding normalisation (vit.EmbedNorm): with
// y = Head(z), e = P·z + b_P, s = 1/‖e‖ and logits = (y − b)·s + b,
//
//	∂L/∂y = s·g,  ∂L/∂e = −s³·⟨g, y − b⟩·e,  gz = Headᵀ·∂L/∂y + Pᵀ·∂L/∂e.
func HeadBackward(m *vit.Model, gz, gLogits, z []float32, rows int) {
	en := m.Normalize
	if en == nil {
		LinearBackward(gz, gLogits, rows, m.Head)
		return
	}
	C, E, d := m.Config.Classes, en.Proj.Out, m.Config.Dim
	y := make([]float32, rows*C)
	m.LinearForward(y, z, rows, m.Head)
	e := make([]float32, rows*E)
	m.LinearForward(e, z, rows, en.Proj)
	gy := make([]float32, rows*C)
	ge := make([]float32, rows*E)
	for r := range rows {
		s := 1 / vit.EmbedLength(e[r*E:(r+1)*E])
		var dot float64
		for k := range C {
			g := float64(gLogits[r*C+k])
			gy[r*C+k] = float32(s * g)
			dot += g * float64(y[r*C+k]-en.ClassBias[k])
		}
		for i, v := range e[r*E : (r+1)*E] {
			ge[r*E+i] = float32(-s * s * s * dot * float64(v))
		}
	}
	LinearBackward(gz, gy, rows, m.Head)
	gp := make([]float32, rows*d)
	LinearBackward(gp, ge, rows, en.Proj)
	vit.Add(gz, gp)
}

// ActivationBackward multiplies g in place by the derivative of the MLP
// activation act (vit.Config.Act) at the forward input x:
//
//	exact GELU  Φ(x) + x·φ(x)
//	gelu_tanh   ½(1 + tanh u) + ½x·(1 − tanh²u)·√(2/π)·(1 + 3·0.044715·x²),
//	            u = √(2/π)·(x + 0.044715·x³)
//	quick_gelu  σ(1.702x) + 1.702x·σ(1.702x)·(1 − σ(1.702x))
func ActivationBackward(act vit.Activation, g, x []float32) {
	var deriv func(x float64) float64
	switch act {
	case vit.ActGELUTanh:
		const k = 0.7978845608028654 // √(2/π), as vit.GELUTanh
		deriv = func(x float64) float64 {
			th := math.Tanh(k * (x + 0.044715*x*x*x))
			return 0.5*(1+th) + 0.5*x*(1-th*th)*k*(1+3*0.044715*x*x)
		}
	case vit.ActQuickGELU:
		deriv = func(x float64) float64 {
			s := 1 / (1 + math.Exp(-1.702*x))
			return s + 1.702*x*s*(1-s)
		}
	default:
		vit.GELUGrad(g, x)
		return
	}
	for i, v := range x {
		g[i] = float32(float64(g[i]) * deriv(float64(v)))
	}
}

// SoftmaxBackward turns gp = ∂L/∂p into ∂L/∂s in place for one row, where
// p = softmax(s): gs = p ⊙ (gp − ⟨gp, p⟩).
func SoftmaxBackward(gp, p []float32) {
	var dot float64
	for i, v := range p {
		dot += float64(gp[i]) * float64(v)
	}
	for i, v := range p {
		gp[i] = float32(float64(v) * (float64(gp[i]) - dot))
	}
}

// AttentionBackward is the backward pass of vit.Attention without edits:
// given the forward's fused qkv (n×3D), its post-softmax probabilities
// (H×n×n) and gHeads = ∂L/∂(concatenated head outputs) (n×D), it returns
// gProbs = ∂L/∂A (H×n×n, the quantity the explanations are built from) and
// gQKV = ∂L/∂qkv (n×3D). Per head, with G, Q, K, V its n×dh slices and S
// the pre-softmax scores,
//
//	∂L/∂A = G·Vᵀ,  ∂L/∂V = Aᵀ·G,  ∂L/∂S = softmax'(∂L/∂A)/√dh,
//	∂L/∂Q = ∂L/∂S·K,  ∂L/∂K = ∂L/∂Sᵀ·Q:
//
// four products through vit.MatMulT and vit.MatMul (the SIMD GEMM in the
// browser; the scalar loops took a third of a B/16 analysis there; the two
// with a transposed left operand computed as their transposes),
// accumulated in float32 like LinearBackward; in the browser's threaded
// module, all heads in one call (attentionBackwardKernel).
// AttentionBackwardNaive is its float64 twin.
func AttentionBackward(qkv []float32, probs *vit.Tensor, gHeads []float32, n, heads, dh int) (gProbs *vit.Tensor, gQKV []float32) {
	gQKV = make([]float32, n*3*heads*dh)
	return attentionBackward(qkv, probs, gHeads, n, heads, dh, gQKV), gQKV
}

// attentionBackward is AttentionBackward writing gQKV into a buffer of the
// caller's (every element: a backward reuses one from block to block), or
// computing only gProbs when gQKV is nil (three of its four products
// skipped): the backward that stops at the first block's attention.
func attentionBackward(qkv []float32, probs *vit.Tensor, gHeads []float32, n, heads, dh int, gQKV []float32) (gProbs *vit.Tensor) {
	gProbs = vit.NewTensor(heads, n, n)
	scale := float32(1 / math.Sqrt(float64(dh)))
	if attentionBackwardKernel == nil || !attentionBackwardKernel(gProbs.Data, gQKV, qkv, probs.Data, gHeads, n, heads, dh, scale) {
		attentionBackwardLoop(gProbs.Data, qkv, probs, gHeads, n, heads, dh, scale, gQKV)
	}
	return gProbs
}

// attentionBackwardKernel runs all heads of attentionBackward at once where
// the platform has a kernel for it (the browser's threaded module: the
// per-head products, too small to share among threads one by one, and the
// gathers and softmax' between them were the part of a B/16 explanation
// that did not scale); attentionBackwardLoop is its twin, bit for bit.
var attentionBackwardKernel = vit.AttentionBackwardHeads

// attentionBackwardLoop is attentionBackward head by head in Go.
func attentionBackwardLoop(gProbs, qkv []float32, probs *vit.Tensor, gHeads []float32, n, heads, dh int, scale float32, gQKV []float32) {
	d := heads * dh
	// gather copies column block off of the n-row matrix x (row stride
	// 3D or D) into an n×dh matrix, gatherT into its dh×n transpose,
	// scatterT a dh×n transpose back. The two products whose left operand
	// is an n×n transpose (∂L/∂V = Aᵀ·G, ∂L/∂K = ∂L/∂Sᵀ·Q) are computed
	// transposed instead, Gᵀ·A and Qᵀ·∂L/∂S, with A and ∂L/∂S as the GEMM's
	// right operand as they are: dh×n transposes in the gathers and
	// scatters that ran anyway replace two n×n ones. The sums are the same
	// terms in the same order: the same bits from the browser's module and
	// the AVX2 GEMM (compared when this was written); the scalar loop's
	// register blocks may round otherwise.
	gather := func(dst, x []float32, stride, off int) {
		for t := range n {
			copy(dst[t*dh:(t+1)*dh], x[t*stride+off:])
		}
	}
	gatherT := func(dst, x []float32, stride, off int) {
		for t := range n {
			for i, v := range x[t*stride+off : t*stride+off+dh] {
				dst[i*n+t] = v
			}
		}
	}
	scatter := func(x []float32, off int, src []float32) {
		for t := range n {
			copy(x[t*3*d+off:t*3*d+off+dh], src[t*dh:])
		}
	}
	scatterT := func(x []float32, off int, src []float32) {
		for t := range n {
			row := x[t*3*d+off : t*3*d+off+dh]
			for i := range row {
				row[i] = src[i*n+t]
			}
		}
	}
	g, x, out := make([]float32, n*dh), make([]float32, n*dh), make([]float32, n*dh)
	gS := make([]float32, n*n)
	for h := range heads {
		qo, ko, vo := h*dh, d+h*dh, 2*d+h*dh
		a := probs.Data[h*n*n : (h+1)*n*n]
		gA := gProbs[h*n*n : (h+1)*n*n]
		gather(g, gHeads, d, qo)
		gather(x, qkv, 3*d, vo)
		vit.MatMulT(gA, g, x, n, n, dh) // G·Vᵀ
		if gQKV == nil {
			continue
		}
		gatherT(x, gHeads, d, qo)
		vit.MatMul(out, x, a, dh, n, n) // (Aᵀ·G)ᵀ = Gᵀ·A
		scatterT(gQKV, vo, out)
		copy(gS, gA)
		for t := range n {
			row := gS[t*n : (t+1)*n]
			SoftmaxBackward(row, a[t*n:(t+1)*n])
			for s := range row {
				row[s] *= scale
			}
		}
		gather(x, qkv, 3*d, ko)
		vit.MatMul(out, gS, x, n, dh, n) // ∂L/∂S·K
		scatter(gQKV, qo, out)
		gatherT(x, qkv, 3*d, qo)
		vit.MatMul(out, x, gS, dh, n, n) // (∂L/∂Sᵀ·Q)ᵀ = Qᵀ·∂L/∂S
		scatterT(gQKV, ko, out)
	}
}

// AttentionBackwardNaive is AttentionBackward as plain loops reducing in
// float64: the twin its tests compare it with.
func AttentionBackwardNaive(qkv []float32, probs *vit.Tensor, gHeads []float32, n, heads, dh int) (gProbs *vit.Tensor, gQKV []float32) {
	d := heads * dh
	gProbs = vit.NewTensor(heads, n, n)
	gQKV = make([]float32, n*3*d)
	scale := 1 / math.Sqrt(float64(dh))
	gs := make([]float32, n)
	acc := make([]float64, dh)
	for h := 0; h < heads; h++ {
		qo, ko, vo := h*dh, d+h*dh, 2*d+h*dh
		for t := 0; t < n; t++ {
			a := probs.Data[(h*n+t)*n : (h*n+t+1)*n]
			gA := gProbs.Data[(h*n+t)*n : (h*n+t+1)*n]
			gO := gHeads[t*d+qo : t*d+qo+dh]
			// o_t = Σ_s a[s]·v_s: ∂/∂a[s] = ⟨gO, v_s⟩, ∂/∂v_s += a[s]·gO.
			for s := 0; s < n; s++ {
				v := qkv[s*3*d+vo : s*3*d+vo+dh]
				gA[s] = float32(dot64(gO, v))
				gv := gQKV[s*3*d+vo : s*3*d+vo+dh]
				for i, g := range gO {
					gv[i] += a[s] * g
				}
			}
			copy(gs, gA)
			SoftmaxBackward(gs, a)
			// scores[s] = ⟨q_t, k_s⟩/√dh.
			q := qkv[t*3*d+qo : t*3*d+qo+dh]
			clear(acc)
			for s, g := range gs {
				if g == 0 {
					continue
				}
				k := qkv[s*3*d+ko : s*3*d+ko+dh]
				gk := gQKV[s*3*d+ko : s*3*d+ko+dh]
				gsc := float64(g) * scale
				for i := range acc {
					acc[i] += gsc * float64(k[i])
					gk[i] += float32(gsc * float64(q[i]))
				}
			}
			gq := gQKV[t*3*d+qo : t*3*d+qo+dh]
			for i, v := range acc {
				gq[i] += float32(v)
			}
		}
	}
	return gProbs, gQKV
}

func dot64(x, y []float32) float64 {
	var s float64
	for i, v := range x {
		s += float64(v) * float64(y[i])
	}
	return s
}

func sum64(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	return s
}
