package vit

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

// matMulRef is the float64 reference: out[i,j] = Σ_p A[i,p]·B[p,j] with
// A[i,p] = a[i*lda+p] and B[p,j] = bAt(p, j).
func matMulRef(a []float32, lda, m, n, k int, bAt func(p, j int) float32) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(a[i*lda+p]) * float64(bAt(p, j))
			}
			out[i*n+j] = s
		}
	}
	return out
}

// gemmShapes are odd and even sizes around the tile (6×16), kc (256) and mc
// (240) boundaries, plus the forward's attention shapes.
var gemmShapes = [][3]int{{1, 1, 1}, {1, 17, 3}, {5, 15, 1}, {6, 16, 8}, {7, 33, 65}, {13, 31, 0},
	{29, 47, 255}, {37, 16, 257}, {241, 50, 300}, {250, 97, 513}, {197, 197, 64}, {197, 64, 197}}

func checkClose(t *testing.T, what string, got []float32, ldc int, want []float64, m, n, k int) {
	t.Helper()
	tol := 1e-5 * math.Sqrt(float64(max(k, 1)))
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			if d := math.Abs(float64(got[i*ldc+j]) - want[i*n+j]); d > tol*math.Max(1, math.Abs(want[i*n+j])) || math.IsNaN(d) {
				t.Fatalf("%s: [%d,%d] = %g, reference %g", what, i, j, got[i*ldc+j], want[i*n+j])
			}
		}
	}
}

// Every micro-kernel of this build, through the whole packed GEMM (packing,
// k/m blocking, edge tiles, threads, both B layouts, the epilogue), against
// a float64 reference.
func TestGEMMKernelsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, kern := range kernels {
		for _, s := range gemmShapes {
			m, n, k := s[0], s[1], s[2]
			lda, ldc := k+3, n+5 // strided operands, as attention reads them
			a := randSlice(rng, m*lda)
			w := randSlice(rng, n*(k+2)) // W is n×k with row stride k+2
			v := randSlice(rng, k*(n+1)) // V is k×n with row stride n+1
			bias := randSlice(rng, n)
			for _, workers := range []int{1, 3} {
				name := fmt.Sprintf("%s %v workers=%d", kern.name, s, workers)
				var pb packedB
				pb.packBT(w, k+2, n, k)
				out := randSlice(rng, m*ldc)
				gemm(&kern, out, ldc, a, lda, m, &pb, epilogue{bias: bias}, workers)
				want := matMulRef(a, lda, m, n, k, func(p, j int) float32 { return w[j*(k+2)+p] })
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						want[i*n+j] += float64(bias[j])
					}
				}
				checkClose(t, name+" Wᵀ+bias", out, ldc, want, m, n, k)
				pb.packBN(v, n+1, k, n)
				gemm(&kern, out, ldc, a, lda, m, &pb, epilogue{}, workers)
				want = matMulRef(a, lda, m, n, k, func(p, j int) float32 { return v[p*(n+1)+j] })
				checkClose(t, name+" V", out, ldc, want, m, n, k)
				// Added to what out holds (a residual stream), with a bias.
				before := append([]float32(nil), out...)
				gemm(&kern, out, ldc, a, lda, m, &pb, epilogue{accumulate: true, bias: bias}, workers)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						want[i*n+j] += float64(before[i*ldc+j]) + float64(bias[j])
					}
				}
				checkClose(t, name+" out+V+bias", out, ldc, want, m, n, k)
				for i := range out { // past column n of each row: untouched
					if i%ldc >= n && out[i] != before[i] {
						t.Fatalf("%s out+V+bias: wrote past the last column at %d", name, i)
					}
				}
			}
		}
	}
}

// The assembly micro-kernels against the Go one, tile by tile, including
// kc = 0 and the accumulate flag.
func TestMicroKernelsMatchGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, kern := range kernels[1:] {
		for _, kc := range []int{0, 1, 2, 4, 5, 7, 64, 256} {
			for _, acc := range []bool{false, true} {
				a, b := randSlice(rng, kc*gemmMR+1), randSlice(rng, kc*gemmNR+1)
				const ldc = gemmNR + 3
				c0 := randSlice(rng, gemmMR*ldc)
				got, want := append([]float32(nil), c0...), append([]float32(nil), c0...)
				kern.run(&a[0], &b[0], &got[0], kc, ldc, acc)
				gemmGo(&a[0], &b[0], &want[0], kc, ldc, acc)
				for i := range got {
					if i%ldc >= gemmNR {
						if got[i] != c0[i] {
							t.Fatalf("%s kc=%d wrote outside the tile at %d", kern.name, kc, i)
						}
						continue
					}
					if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*math.Sqrt(float64(kc+1))*math.Max(1, math.Abs(float64(want[i]))) {
						t.Fatalf("%s kc=%d acc=%v: [%d] = %g, Go kernel %g", kern.name, kc, acc, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// Fused GELU in the epilogue equals GELU applied after the product.
func TestGEMMGELUEpilogue(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	m, n, k := 23, 40, 70
	a, w, bias := randSlice(rng, m*k), randSlice(rng, n*k), randSlice(rng, n)
	p := PackT(w, n, k)
	fused, plain := make([]float32, m*n), make([]float32, m*n)
	p.MatMulT(fused, a, m, bias, true)
	p.MatMulT(plain, a, m, bias, false)
	GELU(plain)
	for i := range fused {
		if fused[i] != plain[i] {
			t.Fatalf("element %d: fused GELU %g, separate %g", i, fused[i], plain[i])
		}
	}
}

// MatMulTAdd (the residual in the GEMM) equals MatMulT then Add, on
// whatever path this build and VITLENS_GEMM run, the scalar loop included.
func TestMatMulTAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	m, n, k := 29, 37, 300
	a, w, bias, x := randSlice(rng, m*k), randSlice(rng, n*k), randSlice(rng, n), randSlice(rng, m*n)
	p := PackT(w, n, k)
	fused, plain := append([]float32(nil), x...), make([]float32, m*n)
	p.MatMulTAdd(fused, a, m, bias)
	p.MatMulT(plain, a, m, bias, false)
	Add(plain, x)
	for i := range fused {
		if d := math.Abs(float64(fused[i] - plain[i])); d > 1e-5*math.Max(1, math.Abs(float64(plain[i]))) {
			t.Fatalf("element %d: in the GEMM %g, added after %g", i, fused[i], plain[i])
		}
	}
}

// VITLENS_GEMM names a kernel this build has (or "scalar"), so a forced run
// of the suite cannot silently test the default instead.
func TestGEMMKernelEnv(t *testing.T) {
	name := os.Getenv("VITLENS_GEMM")
	if name == "" {
		t.Logf("matmul path: %s", GEMMKernel())
		return
	}
	if GEMMKernel() != name {
		t.Fatalf("VITLENS_GEMM=%s but this build and CPU run %q (have: scalar and %v)", name, GEMMKernel(), kernelNames())
	}
}

func kernelNames() []string {
	var names []string
	for _, k := range kernels {
		names = append(names, k.name)
	}
	return names
}

// MatMul (b row-major k×n, packed as it is) against a float64 reference,
// and bit for bit against MatMulT on bᵀ, whose packing makes the same
// panels (and whose scalar loop it runs on the scalar path).
func TestMatMulMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, s := range gemmShapes {
		m, n, k := s[0], s[1], s[2]
		a, b := randSlice(rng, m*k), randSlice(rng, k*n)
		bT := make([]float32, n*k)
		for p := range k {
			for j := range n {
				bT[j*k+p] = b[p*n+j]
			}
		}
		got, viaT := make([]float32, m*n), make([]float32, m*n)
		MatMul(got, a, b, m, n, k)
		MatMulT(viaT, a, bT, m, n, k)
		if !slices.Equal(got, viaT) {
			t.Fatalf("%d×%d×%d: MatMul differs from MatMulT on the transpose", m, n, k)
		}
		checkClose(t, fmt.Sprintf("MatMul %d×%d×%d", m, n, k), got, n, matMulRef(a, k, m, n, k, func(p, j int) float32 { return b[p*n+j] }), m, n, k)
	}
}

// Each form of an unpacked B (layoutB) is packed by its Go packer into the
// panels that its strides define (layoutB.at, which the browser's module
// packs from): one definition, three packers held to it on odd shapes.
func TestLayoutBPacksItsStrides(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	for _, s := range oddShapes {
		k, n := s[0], s[1]
		b := randSlice(rng, k*n)
		var kept packedB // the panels of Bᵀ (n×k), as PackT keeps a Linear of Out k, In n
		kept.packBT(b, n, k, n)
		rowMajor := func(p, j int) float32 { return b[p*n+j] }
		for _, l := range []struct {
			name string
			l    layoutB
			b    func(p, j int) float32 // B by its definition
		}{
			{"rowsB", rowsB(b, n, k, n), rowMajor},
			{"columnsB", columnsB(b, k, n, k), func(p, j int) float32 { return b[j*k+p] }}, // b is n×k
			{"weightsB", weightsB(&kept), rowMajor},
		} {
			if l.l.k != k || l.l.n != n {
				t.Fatalf("%s of %d×%d is %d×%d", l.name, k, n, l.l.k, l.l.n)
			}
			for p := range k {
				for j := range n {
					if l.l.at(p, j) != l.b(p, j) {
						t.Fatalf("%s %d×%d: its strides give B[%d,%d] = %g, not %g", l.name, k, n, p, j, l.l.at(p, j), l.b(p, j))
					}
				}
			}
			var got packedB
			got.data = slices.Repeat([]float32{42}, (n+gemmNR)*k) // stale values must not survive
			l.l.pack(&got)
			for p := range k {
				for j := range (n + gemmNR - 1) / gemmNR * gemmNR {
					want := float32(0) // the panels' padding
					if j < n {
						want = l.l.at(p, j)
					}
					if g := got.at(p, j); g != want {
						t.Fatalf("%s %d×%d: packed B[%d,%d] = %g, its strides say %g", l.name, k, n, p, j, g, want)
					}
				}
			}
		}
	}
}
