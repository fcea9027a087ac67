package vit

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// oddShapes are Out×In sizes around the panel width (16) and k-block (256):
// partial last panels, a single row or column, more than one k-block.
var oddShapes = [][2]int{{1, 1}, {1, 7}, {7, 1}, {5, 3}, {15, 16}, {16, 7}, {17, 33}, {31, 16}, {33, 257}, {40, 513}}

func randomWeights(rng *rand.Rand, n int) []float32 {
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	w[0] = float32(math.Copysign(0, -1)) // a negative zero must survive too
	return w
}

// transposed is the obvious c×r transpose of the r×c matrix a.
func transposed(a []float32, r, c int) []float32 {
	t := make([]float32, len(a))
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			t[j*r+i] = a[i*c+j]
		}
	}
	return t
}

func sameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

// The panels hold W exactly: unpackBT inverts packBT bit for bit, whatever
// kernel this build runs.
func TestPackedBUnpackExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range oddShapes {
		n, k := s[0], s[1]
		w := randomWeights(rng, n*k)
		var b packedB
		b.packBT(w, k, n, k)
		got := make([]float32, n*k)
		b.unpackBT(got, k)
		if !sameBits(got, w) {
			t.Fatalf("%d×%d: unpackBT(packBT(W)) differs from W", n, k)
		}
		for i := 0; i < n; i++ {
			for j := 0; j < k; j++ {
				if math.Float32bits(b.at(j, i)) != math.Float32bits(w[i*k+j]) {
					t.Fatalf("%d×%d: at(%d, %d) = %g, want W[%d, %d] = %g", n, k, j, i, b.at(j, i), i, j, w[i*k+j])
				}
			}
		}
	}
}

// A packed Linear holds one copy of W, reads back exactly through Weights,
// Row, At, Transposed and Unpacked, and computes the same products bit for
// bit.
func TestLinearPackedReadersExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range oddShapes {
		n, k := s[0], s[1]
		w := randomWeights(rng, n*k)
		orig := slices.Clone(w)
		plain := Linear{In: k, Out: n, W: w, B: randomWeights(rng, n)}
		l := plain
		l.Pack()
		if l.W != nil || !l.Packed() {
			t.Fatalf("%d×%d: packed Linear still holds W", n, k)
		}
		if activeKernel != nil && l.packed.w != nil {
			t.Fatalf("%d×%d: the packed form keeps the row-major W as well", n, k)
		}
		if !sameBits(w, orig) {
			t.Fatalf("%d×%d: Pack changed the slice it packed", n, k)
		}
		if !sameBits(l.Weights(), orig) {
			t.Fatalf("%d×%d: Weights differs from W", n, k)
		}
		for i := 0; i < n; i++ {
			if !sameBits(l.Row(i), orig[i*k:(i+1)*k]) {
				t.Fatalf("%d×%d: Row(%d) differs from W's row", n, k, i)
			}
			for j := 0; j < k; j++ {
				if math.Float32bits(l.At(i, j)) != math.Float32bits(orig[i*k+j]) {
					t.Fatalf("%d×%d: At(%d, %d) = %g, want %g", n, k, i, j, l.At(i, j), orig[i*k+j])
				}
			}
		}
		u := l.Unpacked()
		if u.Packed() || !sameBits(u.W, orig) {
			t.Fatalf("%d×%d: Unpacked is not W, unpacked", n, k)
		}
		u.W[0] = 42
		if l.At(0, 0) == 42 || w[0] == 42 {
			t.Fatalf("%d×%d: Unpacked shares storage with the layer", n, k)
		}
		again := l
		again.Pack() // idempotent
		if again.packed != l.packed {
			t.Fatalf("%d×%d: packing twice repacked", n, k)
		}
		rows := 7
		x := randomWeights(rng, rows*k)
		want, got := make([]float32, rows*n), make([]float32, rows*n)
		LinearForward(want, x, rows, plain)
		LinearForward(got, x, rows, l)
		if !sameBits(got, want) {
			t.Fatalf("%d×%d: the packed layer's product differs from the unpacked one's", n, k)
		}
	}
}

// Linear.MatMul (x·W, the backward pass's product) packs W from the layer's
// panels by block transposes: exactly the operand packBN makes from the
// row-major W, so the product is the unpacked layer's bit for bit, and it
// matches a float64 reference of x·W on every odd shape and on every path
// this build runs (VITLENS_GEMM=scalar reaches the Transposed twin).
func TestLinearMatMulFromPanels(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, s := range oddShapes {
		n, k := s[0], s[1] // W is n×k: Out = n, In = k
		w := randomWeights(rng, n*k)
		plain := Linear{In: k, Out: n, W: slices.Clone(w)}
		l := Linear{In: k, Out: n, W: w}
		l.Pack()
		if activeKernel != nil {
			var fromPanels, fromRows packedB
			fromPanels.data = slices.Repeat([]float32{42}, 16*(n+16)*(k+16)) // stale values must not survive
			fromPanels.packTransposed(l.packed.packed)
			fromRows.packBN(plain.W, k, n, k)
			if fromPanels.n != fromRows.n || fromPanels.k != fromRows.k || !sameBits(fromPanels.data, fromRows.data) {
				t.Fatalf("%d×%d: packTransposed differs from packBN of W", n, k)
			}
		}
		for _, rows := range []int{1, 6, 13} {
			x := randomWeights(rng, rows*n)
			got, unpacked := make([]float32, rows*k), make([]float32, rows*k)
			l.MatMul(got, x, rows)
			plain.MatMul(unpacked, x, rows)
			if !sameBits(got, unpacked) {
				t.Fatalf("%d×%d, %d rows: the packed layer's x·W differs from the unpacked one's", n, k, rows)
			}
			want := matMulRef(x, n, rows, k, n, func(p, j int) float32 { return plain.W[p*k+j] })
			checkClose(t, fmt.Sprintf("%d×%d x·W, %d rows", n, k, rows), got, k, want, rows, k, n)
		}
	}
}

// A model is packed at load: every Linear of NewRandom's model holds its
// weights once, and the counts and shape checks read either form.
func TestNewRandomPacked(t *testing.T) {
	c := Config{ImageSize: 16, PatchSize: 4, Channels: 3, Dim: 16, Depth: 2, Heads: 2, MLPDim: 24, Classes: 5,
		QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: PoolCLS, DistToken: true}
	m, err := NewRandom(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	ls := []Linear{m.Patch, m.Head, m.HeadCLS, m.HeadDist}
	for _, b := range m.Blocks {
		ls = append(ls, b.QKV, b.Proj, b.FC1, b.FC2)
	}
	unpacked := *m
	unpacked.Blocks = slices.Clone(m.Blocks)
	for i, l := range ls {
		if !l.Packed() || l.W != nil {
			t.Fatalf("layer %d is not packed", i)
		}
	}
	unpacked.Patch, unpacked.Head = m.Patch.Unpacked(), m.Head.Unpacked()
	unpacked.HeadCLS, unpacked.HeadDist = m.HeadCLS.Unpacked(), m.HeadDist.Unpacked()
	for i := range unpacked.Blocks {
		b := &unpacked.Blocks[i]
		b.QKV, b.Proj, b.FC1, b.FC2 = b.QKV.Unpacked(), b.Proj.Unpacked(), b.FC1.Unpacked(), b.FC2.Unpacked()
	}
	if m.NumParams() != unpacked.NumParams() {
		t.Fatalf("NumParams %d packed, %d unpacked", m.NumParams(), unpacked.NumParams())
	}
	if err := m.CheckShapes(); err != nil {
		t.Fatal(err)
	}
	img := RandomImages(c, 1, 2)[0]
	a, err := m.Forward(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := unpacked.Forward(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !sameBits(a.Logits, b.Logits) {
		t.Fatalf("packed model's logits %v, unpacked %v", a.Logits, b.Logits)
	}
}

// Linear.MatMulGELUGrad against its twin, MatMul then GELUGrad, bit for
// bit: in the browser's threaded module one job whose chunks apply GELU'
// to their own columns, so shapes that cut into several chunks (the MLP's
// backward at B/16 sizes) and widths that are not a multiple of 4 (the
// last chunk's tail) are among them.
func TestLinearMatMulGELUGradMatchesTwin(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, s := range append(slices.Clone(oddShapes), [2]int{96, 1001}, [2]int{64, 3072}) {
		n, k := s[0], s[1] // W is n×k: Out = n, In = k
		l := Linear{In: k, Out: n, W: randomWeights(rng, n*k)}
		l.Pack()
		for _, rows := range []int{1, 13, 197} {
			a, x := randomWeights(rng, rows*n), randomWeights(rng, rows*k)
			for i := range x {
				x[i] *= 8 // GELU' over its range, past the flush of φ at |x| ≈ 13 for a few
			}
			got, want := make([]float32, rows*k), make([]float32, rows*k)
			l.MatMulGELUGrad(got, a, rows, x)
			l.MatMul(want, a, rows)
			GELUGrad(want, x)
			if !sameBits(got, want) {
				t.Fatalf("%d×%d, %d rows: (a·W)⊙GELU'(x) differs from MatMul then GELUGrad", n, k, rows)
			}
		}
	}
}
