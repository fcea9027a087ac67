package vit

import "runtime"

// This file is how a Linear stores its weights. A model is packed once where
// it is made (Model.Pack, called by checkpoint.FromTensors and ApplyHead,
// NewRandom and gpu.F16Weights): every Linear's W moves into the CPU GEMM's
// form (PackedT: 16-column panels with an assembly kernel, W as is for the
// scalar loop) and l.W is dropped, so the process holds the weights once.
// Readers that want W in PyTorch layout (the GPU upload, the explain
// backward, the lens's folded head, the memories, DLA) read it through
// Weights, Row and At, which unpack exactly and cache nothing; a product
// with W itself (x·W) is Linear.MatMul, straight from the panels.

// Pack moves every Linear of m into the CPU GEMM's form (Linear.Pack). It
// is meant for load time, before the model is shared: it writes m's fields.
func (m *Model) Pack() {
	ls := []*Linear{&m.Patch, &m.Head, &m.HeadCLS, &m.HeadDist} // distilled DeiT's two heads (empty otherwise)
	if m.Normalize != nil {
		ls = append(ls, &m.Normalize.Proj)
	}
	for i := range m.Blocks {
		b := &m.Blocks[i]
		ls = append(ls, &b.QKV, &b.Proj, &b.FC1, &b.FC2)
	}
	// Go reuses freed memory only after a collection. For a large model,
	// collecting first (what the load dropped: the file's bytes) and then
	// after every packGCBytes of dropped row-major matrices lets the packed
	// copies reuse that memory, so packing adds about packGCBytes to the
	// peak instead of a second copy of the weights (README, "CPU forward").
	total := 0 // bytes to copy into panels (none on the scalar path)
	for _, l := range ls {
		if !l.Packed() && activeKernel != nil {
			total += 4 * len(l.W)
		}
	}
	dropped := packGCBytes
	for _, l := range ls {
		if total >= packGCBytes && dropped >= packGCBytes {
			runtime.GC()
			dropped = 0
		}
		if !l.Packed() {
			dropped += 4 * len(l.W)
		}
		l.Pack()
	}
}

// packGCBytes is how many bytes of dropped weights Model.Pack lets pile up
// before it collects them; smaller models are packed without a collection.
const packGCBytes = 64 << 20

// Pack moves l.W into the CPU GEMM's form and sets l.W to nil; a packed or
// empty Linear is left as it is. Copies of l made before share W, which
// Pack does not modify.
func (l *Linear) Pack() {
	if l.packed != nil || len(l.W) == 0 {
		return
	}
	l.packed = PackT(l.W, l.Out, l.In)
	l.W = nil
}

// Packed reports whether l holds its weights in the GEMM's form (l.W nil).
func (l Linear) Packed() bool { return l.packed != nil }

// Weights returns W (Out×In, row-major) for reading only: l.W itself when
// l is not packed, the stored matrix on the scalar path, and otherwise a
// fresh copy unpacked from the panels, which the caller drops after use.
func (l Linear) Weights() []float32 {
	if l.packed == nil {
		return l.W
	}
	if l.packed.packed == nil {
		return l.packed.w
	}
	w := make([]float32, l.Out*l.In)
	l.packed.packed.unpackBT(w, l.In)
	return w
}

// Row returns row i of W (In values: output i's weights, a class embedding
// for the head), for reading only (it may be the stored row).
func (l Linear) Row(i int) []float32 {
	if l.packed == nil {
		return l.W[i*l.In : (i+1)*l.In]
	}
	if l.packed.packed == nil {
		return l.packed.w[i*l.In : (i+1)*l.In]
	}
	row := make([]float32, l.In)
	for j := range row {
		row[j] = l.packed.packed.at(j, i)
	}
	return row
}

// At returns W[i, j].
func (l Linear) At(i, j int) float32 {
	if l.packed == nil {
		return l.W[i*l.In+j]
	}
	if l.packed.packed == nil {
		return l.packed.w[i*l.In+j]
	}
	return l.packed.packed.at(j, i) // the panels hold Wᵀ
}

// MatMul computes out (rows×In) = a (rows×Out)·W: the product of a
// backward pass (∂L/∂x = ∂L/∂y·W for y = x·Wᵀ + b) and of E·W_out. A
// packed layer's panels are read as W (weightsB): Go block-transposes them
// into the GEMM's operand (packTransposed) instead of unpacking Wᵀ and
// packing again (two copies, the second strided: a fifth of a B/16
// explanation in the browser), and the browser's module transposes the
// copy of the panels it holds for the forward, so nothing is copied in. An
// unpacked layer goes through MatMul with W as it is.
func (l Linear) MatMul(out, a []float32, rows int) {
	if activeKernel == nil || l.packed == nil || l.packed.packed == nil {
		MatMul(out, a, l.Weights(), rows, l.In, l.Out)
		return
	}
	productOnce(out, a, rows, weightsB(l.packed.packed))
}

// MatMulGELUGrad computes out (rows×In) = (a·W) ⊙ GELU'(x), x rows×In:
// the MLP's backward from its output through W_fc2 and the exact GELU to
// the pre-activations x, as MatMul then GELUGrad compute it (its twin, bit
// for bit). In the browser's threaded module it is one job whose threads
// each apply GELU' to the columns they computed, where GELUGrad ran on the
// engine's one thread, the gradient copied out, in and out again.
func (l Linear) MatMulGELUGrad(out, a []float32, rows int, x []float32) {
	out, x = out[:rows*l.In], x[:rows*l.In]
	if activeKernel != nil && l.packed != nil && l.packed.packed != nil && matMulGELUGradKernel != nil &&
		matMulGELUGradKernel(out, a, rows, weightsB(l.packed.packed), x) {
		return
	}
	l.MatMul(out, a, rows)
	GELUGrad(out, x)
}

// matMulGELUGradKernel runs MatMulGELUGrad on a layer's panels b where the
// platform has a kernel for it (the browser's threaded module), false,
// nothing written, where not.
var matMulGELUGradKernel func(out, a []float32, rows int, b layoutB, x []float32) bool

// Unpacked returns l with W in PyTorch layout in a slice of its own (a
// copy), not packed: for building a changed layer from l, or for code that
// indexes l.W of one layer at a time.
func (l Linear) Unpacked() Linear {
	w := l.Weights()
	if l.packed == nil || l.packed.packed == nil {
		w = append([]float32(nil), w...)
	}
	return Linear{In: l.In, Out: l.Out, W: w, B: l.B}
}

// numWeights is how many weights l holds, in either form.
func (l Linear) numWeights() int {
	if l.packed != nil {
		return l.Out * l.In
	}
	return len(l.W)
}

// LinearForward computes out = x·Wᵀ + B for `rows` vectors with l's weights
// in the form they were packed in (Model.Pack); an unpacked l is packed for
// the call, as by the LinearForward function.
func (m *Model) LinearForward(out, x []float32, rows int, l Linear) {
	m.linear(out, x, rows, l, false)
}

// linear is LinearForward, with GELU fused into the GEMM when gelu is set.
func (m *Model) linear(out, x []float32, rows int, l Linear, gelu bool) {
	l.gemmForm().MatMulT(out, x, rows, l.B, gelu)
}

// linearAdd adds x·Wᵀ + B to out: a residual connection in the GEMM.
func (m *Model) linearAdd(out, x []float32, rows int, l Linear) {
	l.gemmForm().MatMulTAdd(out, x, rows, l.B)
}

// gemmForm is l's weights as the GEMM's right operand: the packed form, or
// l.W packed for this call when l is not packed.
func (l Linear) gemmForm() *PackedT {
	if l.packed != nil {
		return l.packed
	}
	return packOnce(l.W, l.Out, l.In)
}
