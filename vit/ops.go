package vit

import (
	"math"
	"runtime"
	"sync"
)

// This file holds the pure-Go reference ops, one plain function per op. They
// are the oracle every WGSL kernel is validated against, so clarity comes
// first; only MatMul is blocked and parallel because it is ~all of the time.

// LayerNorm writes LN(x) for each of `rows` vectors of width d, with fresh
// statistics per vector (two-pass mean/variance in float64 so the oracle is
// not the noisy side of a comparison).
func LayerNorm(out, x []float32, rows, d int, n Norm, eps float32) {
	for r := 0; r < rows; r++ {
		xr := x[r*d : (r+1)*d]
		or := out[r*d : (r+1)*d]
		mean, inv := NormStats(xr, eps)
		for i, v := range xr {
			or[i] = float32((float64(v)-mean)*inv)*n.W[i] + n.B[i]
		}
	}
}

// NormStats returns the mean of x and 1/√(var(x)+eps), LayerNorm's
// statistics of one vector (population variance, two passes in float64).
// Each pass keeps four partial sums, so that it is not one chain of
// dependent additions: the lens computes these statistics for every token,
// site and block (9456 vectors per B/16 image), and one chain took as long
// as the rest of its per-token work.
func NormStats(x []float32, eps float32) (mean, invStd float64) {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		q := x[i : i+4 : i+4]
		s0 += float64(q[0])
		s1 += float64(q[1])
		s2 += float64(q[2])
		s3 += float64(q[3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i])
	}
	mean = (s0 + s1 + s2 + s3) / float64(len(x))
	s0, s1, s2, s3 = 0, 0, 0, 0
	i = 0
	for ; i+4 <= len(x); i += 4 {
		q := x[i : i+4 : i+4]
		d0, d1, d2, d3 := float64(q[0])-mean, float64(q[1])-mean, float64(q[2])-mean, float64(q[3])-mean
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(x); i++ {
		d := float64(x[i]) - mean
		s0 += d * d
	}
	variance := (s0 + s1 + s2 + s3) / float64(len(x))
	return mean, 1 / math.Sqrt(variance+float64(eps))
}

// GELU applies the erf GELU in place, as timm, torchvision and Hugging Face
// ViTs use, with a float32 erf (Erf32). GELUExact is its float64 twin.
func GELU(x []float32) {
	for i := geluVector(x); i < len(x); i++ {
		v := x[i]
		x[i] = 0.5 * v * (1 + Erf32(v*invSqrt2))
	}
}

const (
	invSqrt2   = 0.70710678118654752440
	invSqrt2Pi = 0.39894228040143267794 // 1/√(2π)
	log2e      = 1.44269504088896340736
	// expFloor is the least x for which Exp32 is a normal float32.
	expFloor = -87.33654
)

// GELUGrad multiplies g in place by the exact GELU's derivative at the
// forward input x (the backward pass of GELU), in float32 through Erf32 and
// Exp32: math.Erf and math.Exp in float64 were a sixth of a B/16
// explanation in the browser, where it runs in the SIMD module
// (geluGradVector) with the same float32 operations. geluDeriv is the Go
// loop's.
func GELUGrad(g, x []float32) {
	x = x[:len(g)]
	for i := geluGradVector(g, x); i < len(g); i++ {
		g[i] *= geluDeriv(x[i])
	}
}

// geluDeriv is Φ(x) + x·φ(x), the exact GELU's derivative, with φ flushed
// to 0 where e^(−x²/2) is below the least normal float32 (|x| > 13.2, where
// x·φ(x) < 1e-36): the vector kernels' rule, one comparison per lane.
func geluDeriv(x float32) float32 {
	cdf := 0.5 * (1 + Erf32(x*invSqrt2))
	var pdf float32
	if u := -0.5 * x * x; u >= expFloor {
		pdf = Exp32(u) * invSqrt2Pi
	}
	return cdf + x*pdf
}

// GELUExact is GELU with math.Erf in float64: the slow reference the tests
// hold GELU to (within 1e-6 absolute).
func GELUExact(x []float32) {
	for i, v := range x {
		x[i] = float32(0.5 * float64(v) * (1 + math.Erf(float64(v)/math.Sqrt2)))
	}
}

// Erf32 is erf in float32 by the rational minimax approximation XLA and
// Eigen use (odd degree-13 numerator over even degree-8 denominator on
// [-4, 4], where erf is ±1 in float32 beyond). Max error 4.3e-7 against
// math.Erf; ~5× cheaper, and it was half of a small model's forward time.
// The WGSL GELU kernel is checked against the same reference.
func Erf32(x float32) float32 {
	// max(-4, min(4, x)) without their calls: the browser build runs
	// every GELU here, and there min and max are runtime calls. NaN stays.
	if x > 4 {
		x = 4
	} else if x < -4 {
		x = -4
	}
	x2 := x * x
	p := float32(-2.72614225801306e-10)
	p = p*x2 + 2.77068142495902e-08
	p = p*x2 - 2.10102402082508e-06
	p = p*x2 - 5.69250639462346e-05
	p = p*x2 - 7.34990630326855e-04
	p = p*x2 - 2.95459980854025e-03
	p = p*x2 - 1.60960333262415e-02
	q := float32(-1.45660718464996e-05)
	q = q*x2 - 2.13374055278905e-04
	q = q*x2 - 1.68282697438203e-03
	q = q*x2 - 7.37332916720468e-03
	q = q*x2 - 1.42647390514189e-02
	return x * p / q
}

// Softmax normalises one row in place, subtracting the max for stability.
func Softmax(row []float32) {
	m := row[0]
	for _, v := range row[1:] {
		if v > m {
			m = v
		}
	}
	inv := float32(1 / ExpShift(row, m))
	for i := range row {
		row[i] *= inv
	}
}

// ExpShift sets x[i] = e^(x[i]−shift) in place by Exp32's method, eight
// lanes at a time where the CPU has AVX2 (Exp32 is the twin), and returns
// their sum: the softmax's exponentials and the lens's entropy and KL.
func ExpShift(x []float32, shift float32) float64 {
	done, sum := expShiftVector(x, shift)
	return sum + expShiftGo(x[done:], shift)
}

// Exp32 is e^x in float32 by Cephes' expf: x = n·ln2 + r with |r| ≤ ln2/2,
// a degree-7 polynomial for e^r, and n added to the exponent bits: within
// relative 1e-6 of math.Exp (measured 8.4e-7); beyond it (x < -87.3, x > 88)
// it defers to math.Exp. Softmax calls it n² times per head and block, where
// math.Exp in float64 cost as much as the attention products.
func Exp32(x float32) float32 {
	v := [1]float32{x}
	expShiftGo(v[:], 0) // x − 0 is x
	return v[0]
}

// expShiftGo is ExpShift in Go, Exp32's one home: the polynomial sits in
// the loop because in the browser build this loop is the whole path (no
// vector kernel), and a Go call per element (it does not inline) cost as
// much there as the exponential itself.
func expShiftGo(x []float32, shift float32) (sum float64) {
	for i, v := range x {
		v -= shift
		var e float32
		if !(v >= expFloor && v <= 88.0) { // also NaN
			e = float32(math.Exp(float64(v)))
		} else {
			n := float32(math.Floor(float64(v*log2e) + 0.5))
			r := v - n*0.693359375 - n*-2.12194440e-4 // ln2 in two parts: n·ln2 exactly
			p := float32(1.9875691500e-4)
			p = p*r + 1.3981999507e-3
			p = p*r + 8.3334519073e-3
			p = p*r + 4.1665795894e-2
			p = p*r + 1.6666665459e-1
			p = p*r + 5.0000001201e-1
			e = (p*r*r + r + 1) * math.Float32frombits(uint32(int32(n)+127)<<23)
		}
		x[i] = e
		sum += float64(e)
	}
	return sum
}

// Add accumulates src into dst elementwise (residual connections).
func Add(dst, src []float32) {
	for i, v := range src {
		dst[i] += v
	}
}

// LinearForward computes out = x·Wᵀ + B for `rows` input vectors, packing W
// for the GEMM on every call unless l is packed (Linear.Pack).
func LinearForward(out, x []float32, rows int, l Linear) {
	l.gemmForm().MatMulT(out, x, rows, l.B, false)
}

// MatMulTNaive is the obviously-correct twin of MatMulT: out[i,j] = Σ_k a[i,k]·b[j,k].
func MatMulTNaive(out, a, b []float32, m, n, k int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for p := 0; p < k; p++ {
				s += a[i*k+p] * b[j*k+p]
			}
			out[i*n+j] = s
		}
	}
}

// parallelMinWork is the multiply-add count below which spawning goroutines
// costs more than it saves; small models are parallel across images instead
// (1<<16 made the demo forward 30% slower than 1<<20).
const parallelMinWork = 1 << 20

// MatMulT computes out (m×n) = a (m×k) · bᵀ where b is n×k, the layout of
// PyTorch Linear weights. It packs b for the GEMM (gemm.go) on every call
// (the browser's module packs b itself, as it goes: columnsB); PackT keeps
// a packed copy for operands used many times.
func MatMulT(out, a, b []float32, m, n, k int) {
	if activeKernel == nil {
		matMulTScalar(out, a, b, m, n, k)
		return
	}
	productOnce(out, a, m, columnsB(b, k, n, k))
}

// MatMul computes out (m×n) = a (m×k)·b where b is k×n, row-major: the
// right operand as a backward pass holds it (x·W for a Linear's W,
// attention's keys, queries and values), packed without a transpose. The
// scalar path transposes b for MatMulT's loop.
func MatMul(out, a, b []float32, m, n, k int) {
	if activeKernel == nil {
		t := make([]float32, n*k)
		for p := range k {
			for j, v := range b[p*n : (p+1)*n] {
				t[j*k+p] = v
			}
		}
		matMulTScalar(out, a, t, m, n, k)
		return
	}
	productOnce(out, a, m, rowsB(b, n, k, n))
}

// PackedT is a matrix W (n×k, PyTorch Linear layout) prepared as the right
// operand of x·Wᵀ: packed into the micro-kernel's column panels when an
// assembly kernel runs, kept as is for the scalar loop otherwise. It holds
// one of the two forms, never both; At, Row and Unpack read W from either.
type PackedT struct {
	N, K   int
	w      []float32 // unpacked, for the scalar loop (nil when packed)
	packed *packedB
}

// PackT prepares w (n×k) for repeated products. With an assembly kernel the
// packed copy is as large as w and does not reference it, so a caller that
// drops w holds the matrix once; otherwise w itself is only referenced.
func PackT(w []float32, n, k int) *PackedT {
	p := packOnce(w, n, k)
	if p.packed != nil {
		// Used many times: a kernel with memory of its own (gemm_js.go)
		// keeps a copy there instead of copying it in per product.
		p.packed.kept = true
	}
	return p
}

// packOnce is PackT for a single product.
func packOnce(w []float32, n, k int) *PackedT {
	p := &PackedT{N: n, K: k}
	if activeKernel != nil {
		p.packed = new(packedB)
		p.packed.packBT(w, k, n, k)
	} else {
		p.w = w
	}
	return p
}

// MatMulT computes out (m×N) = a (m×K)·Wᵀ, plus bias per column when bias
// is not nil, then GELU when gelu is set (fused into the GEMM's epilogue).
func (p *PackedT) MatMulT(out, a []float32, m int, bias []float32, gelu bool) {
	if p.packed != nil && activeKernel != nil {
		gemm(activeKernel, out, p.N, a, p.K, m, p.packed, epilogue{bias: bias, gelu: gelu}, gemmWorkers())
		return
	}
	matMulTScalar(out, a, p.w, m, p.N, p.K)
	epilogue{bias: bias, gelu: gelu}.apply(out, p.N, 0, m, 0, p.N)
}

// MatMulTAdd adds a (m×K)·Wᵀ + bias to out (m×N) in the GEMM's epilogue:
// a residual connection without a separate pass over the update.
func (p *PackedT) MatMulTAdd(out, a []float32, m int, bias []float32) {
	if p.packed != nil && activeKernel != nil {
		gemm(activeKernel, out, p.N, a, p.K, m, p.packed, epilogue{accumulate: true, bias: bias}, gemmWorkers())
		return
	}
	update := make([]float32, m*p.N)
	p.MatMulT(update, a, m, bias, false)
	Add(out, update)
}

// matMulTScalar is the scalar path: 2×4 register blocks of dot products,
// column panels split across cores.
func matMulTScalar(out, a, b []float32, m, n, k int) {
	workers := runtime.GOMAXPROCS(0)
	if m*n*k < parallelMinWork || workers == 1 {
		matMulTRange(out, a, b, m, n, k, 0, n)
		return
	}
	// Split the output columns (weight rows) so each worker streams its own
	// part of the weight matrix once, while `a` (activations) stays in cache.
	const colBlock = 16
	chunks := (n + colBlock - 1) / colBlock
	var wg sync.WaitGroup
	next := make(chan int, chunks)
	for c := 0; c < chunks; c++ {
		next <- c
	}
	close(next)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				j0 := c * colBlock
				matMulTRange(out, a, b, m, n, k, j0, min(j0+colBlock, n))
			}
		}()
	}
	wg.Wait()
}

// matMulTRange computes output columns [j0, j1) in 2×4 register blocks: 8
// accumulators plus 6 operands fit the 16 SSE registers Go uses, where a
// 4×4 block spills and runs 1.7× slower (measured with GOMAXPROCS=1). It is
// the twin the packed GEMM is tested against at scale, and the matmul of
// builds without an assembly kernel (WebAssembly, -tags purego).
func matMulTRange(out, a, b []float32, m, n, k, j0, j1 int) {
	i := 0
	for ; i+2 <= m; i += 2 {
		a0, a1 := a[i*k:(i+1)*k], a[(i+1)*k:(i+2)*k]
		a1 = a1[:len(a0)] // equal lengths drop the bounds checks below
		j := j0
		for ; j+4 <= j1; j += 4 {
			b0, b1, b2, b3 := b[j*k:(j+1)*k], b[(j+1)*k:(j+2)*k], b[(j+2)*k:(j+3)*k], b[(j+3)*k:(j+4)*k]
			b0, b1, b2, b3 = b0[:len(a0)], b1[:len(a0)], b2[:len(a0)], b3[:len(a0)]
			var s00, s01, s02, s03, s10, s11, s12, s13 float32
			for p, x0 := range a0 {
				x1 := a1[p]
				y0, y1, y2, y3 := b0[p], b1[p], b2[p], b3[p]
				s00 += x0 * y0
				s01 += x0 * y1
				s02 += x0 * y2
				s03 += x0 * y3
				s10 += x1 * y0
				s11 += x1 * y1
				s12 += x1 * y2
				s13 += x1 * y3
			}
			o := out[i*n+j : i*n+j+4]
			o[0], o[1], o[2], o[3] = s00, s01, s02, s03
			o = out[(i+1)*n+j : (i+1)*n+j+4]
			o[0], o[1], o[2], o[3] = s10, s11, s12, s13
		}
		for ; j < j1; j++ {
			out[i*n+j] = dot(a0, b[j*k:(j+1)*k])
			out[(i+1)*n+j] = dot(a1, b[j*k:(j+1)*k])
		}
	}
	for ; i < m; i++ {
		ar := a[i*k : (i+1)*k]
		for j := j0; j < j1; j++ {
			out[i*n+j] = dot(ar, b[j*k:(j+1)*k])
		}
	}
}

func dot(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float32
	p := 0
	for ; p+4 <= len(x); p += 4 {
		s0 += x[p] * y[p]
		s1 += x[p+1] * y[p+1]
		s2 += x[p+2] * y[p+2]
		s3 += x[p+3] * y[p+3]
	}
	for ; p < len(x); p++ {
		s0 += x[p] * y[p]
	}
	return (s0 + s1) + (s2 + s3)
}
