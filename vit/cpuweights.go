package vit

import "sync"

// cpuWeights maps each Linear's weight matrix (by its first element) to its
// copy packed for the CPU GEMM.
type cpuWeights map[*float32]*PackedT

// packMu serialises the one-time packing of a model's weights.
var packMu sync.Mutex

// cpuWeights packs every Linear of the model on the first CPU forward, not at
// load: GPU-only users never pay for it. The packed copies are as large as
// the weights themselves, which stay as they are because the GPU upload, the
// explain backward, the lens and the memories all read them in PyTorch
// layout. Changing weights in place after a model's first forward is not
// seen by later forwards.
func (m *Model) cpuWeights() cpuWeights {
	if w := m.cpu.Load(); w != nil {
		return *w
	}
	packMu.Lock()
	defer packMu.Unlock()
	if w := m.cpu.Load(); w != nil {
		return *w
	}
	w := cpuWeights{}
	add := func(l Linear) {
		if len(l.W) > 0 {
			w[&l.W[0]] = PackT(l.W, l.Out, l.In)
		}
	}
	add(m.Patch)
	add(m.Head)
	add(m.HeadCLS) // distilled DeiT's two heads (empty otherwise)
	add(m.HeadDist)
	if m.Normalize != nil {
		add(m.Normalize.Proj)
	}
	for _, b := range m.Blocks {
		add(b.QKV)
		add(b.Proj)
		add(b.FC1)
		add(b.FC2)
	}
	m.cpu.Store(&w)
	return w
}

// LinearForward computes out = x·Wᵀ + B for `rows` vectors with l's weights
// packed once per model (l must be one of m's layers; others are packed per
// call, as by the LinearForward function).
func (m *Model) LinearForward(out, x []float32, rows int, l Linear) {
	m.linear(out, x, rows, l, false)
}

// linear is LinearForward, with GELU fused into the GEMM when gelu is set.
func (m *Model) linear(out, x []float32, rows int, l Linear, gelu bool) {
	m.packed(l).MatMulT(out, x, rows, l.B, gelu)
}

// linearAdd adds x·Wᵀ + B to out: a residual connection in the GEMM.
func (m *Model) linearAdd(out, x []float32, rows int, l Linear) {
	m.packed(l).MatMulTAdd(out, x, rows, l.B)
}

// packed is l's weights packed once per model (per call for a Linear not
// of m).
func (m *Model) packed(l Linear) *PackedT {
	var p *PackedT
	if len(l.W) > 0 {
		p = m.cpuWeights()[&l.W[0]]
	}
	if p == nil {
		p = PackT(l.W, l.Out, l.In)
	}
	return p
}
