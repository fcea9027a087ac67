package vit

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randSlice(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// MatMulT (blocked, parallel) against its naive twin on odd and even shapes.
func TestMatMulTMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range [][3]int{{1, 1, 1}, {3, 5, 7}, {4, 4, 4}, {17, 33, 65}, {50, 96, 128}, {197, 70, 64}} {
		m, n, k := s[0], s[1], s[2]
		a, b := randSlice(rng, m*k), randSlice(rng, n*k)
		got, want := make([]float32, m*n), make([]float32, m*n)
		MatMulT(got, a, b, m, n, k)
		MatMulTNaive(want, a, b, m, n, k)
		for i := range got {
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*math.Sqrt(float64(k)) {
				t.Fatalf("%v: element %d = %g, naive %g", s, i, got[i], want[i])
			}
		}
	}
}

func TestSoftmaxSumsToOne(t *testing.T) {
	row := []float32{1000, 1001, -5, 0}
	Softmax(row)
	var s float32
	for _, v := range row {
		s += v
	}
	if math.Abs(float64(s-1)) > 1e-6 || row[1] < row[0] {
		t.Fatalf("softmax %v", row)
	}
}

// A random model runs, and the three interventions behave as defined.
func TestForwardInterventions(t *testing.T) {
	c := Config{ImageSize: 16, PatchSize: 4, Channels: 3, Dim: 8, Depth: 2, Heads: 2, MLPDim: 16, Classes: 5,
		QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: PoolCLS}
	m, err := NewRandom(c, 7)
	if err != nil {
		t.Fatal(err)
	}
	px := &Tensor{Shape: []int{3, 16, 16}, Data: randSlice(rand.New(rand.NewPCG(3, 4)), 3*16*16)}
	base, err := m.Forward(px, Options{Taps: Taps{AttnProbs: true}})
	if err != nil {
		t.Fatal(err)
	}
	self, err := m.Forward(px, Options{Edit: EditSelfOnly, Taps: Taps{AttnProbs: true}})
	if err != nil {
		t.Fatal(err)
	}
	n := c.NumTokens()
	p := self.AttnProbs[1].Data
	for tok := 1; tok < n; tok++ {
		if p[tok*n+tok] != 1 {
			t.Fatalf("self_only: token %d attends %g to itself", tok, p[tok*n+tok])
		}
	}
	// The [CLS] row is untouched by either edit.
	noCLS, _ := m.Forward(px, Options{Edit: EditNoCLS, Taps: Taps{AttnProbs: true}})
	for s := 0; s < n; s++ {
		if noCLS.AttnProbs[0].Data[s] != base.AttnProbs[0].Data[s] {
			t.Fatalf("no_cls changed the [CLS] row in block 0")
		}
	}
	for tok := 1; tok < n; tok++ {
		if noCLS.AttnProbs[0].Data[tok*n] != 0 {
			t.Fatalf("no_cls: token %d still attends to [CLS]", tok)
		}
	}
	if _, err := m.Forward(px, Options{Keep: []int{3, 0}}); err == nil {
		t.Fatal("keeping tokens without [CLS] first should fail")
	}
	kept, err := m.Forward(px, Options{Keep: []int{0, 2, 5}, Taps: TapSites(SiteHS)})
	if err != nil {
		t.Fatal(err)
	}
	if got := kept.Site(SiteHS, 1).Shape; got[0] != 3 {
		t.Fatalf("kept sequence has shape %v", got)
	}
}

func TestGELUMatchesExact(t *testing.T) {
	var x []float32
	for i := -120000; i <= 120000; i++ { // [-12, 12] in steps of 1e-4
		x = append(x, float32(i)/10000)
	}
	fast, exact := append([]float32(nil), x...), append([]float32(nil), x...)
	GELU(fast)
	GELUExact(exact)
	worst := 0.0
	for i := range x {
		worst = math.Max(worst, math.Abs(float64(fast[i]-exact[i]))/math.Max(1, math.Abs(float64(x[i]))))
	}
	if worst > 1e-6 {
		t.Fatalf("GELU differs from the float64 reference by %g (relative to max(1,|x|))", worst)
	}
	t.Logf("max |GELU - GELUExact| / max(1,|x|) = %.2g", worst)
}

// Exp32 against math.Exp over the softmax's range and beyond, and at the
// edges where it defers to math.Exp.
func TestExp32MatchesExp(t *testing.T) {
	worst := 0.0
	for i := -1000000; i <= 1000000; i++ {
		x := float32(i) * 9e-5 // [-90, 90]
		want := math.Exp(float64(x))
		got := float64(Exp32(x))
		if want == 0 || want > math.MaxFloat32 {
			continue
		}
		worst = math.Max(worst, math.Abs(got-want)/want)
	}
	if worst > 1e-6 {
		t.Fatalf("Exp32 relative error %g", worst)
	}
	if !math.IsNaN(float64(Exp32(float32(math.NaN())))) || Exp32(-200) != 0 || !math.IsInf(float64(Exp32(200)), 1) {
		t.Fatal("Exp32 edge cases")
	}
	t.Logf("max relative error of Exp32: %.2g", worst)
}

// The vector GELU and softmax exponentials (where this build has them)
// against their Go loops, on lengths that leave a tail.
func TestVectorActivationsMatchGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	x := randSlice(rng, 1003)
	for i := range x {
		x[i] *= 4
	}
	x[0], x[1], x[2] = 0, 30, -30
	vec := append([]float32(nil), x...)
	done := geluVector(vec)
	t.Logf("vector GELU did %d of %d", done, len(x))
	for i := 0; i < done; i++ {
		v := x[i]
		want := 0.5 * v * (1 + Erf32(v*invSqrt2))
		if d := math.Abs(float64(vec[i] - want)); d > 1e-6*math.Max(1, math.Abs(float64(v))) {
			t.Fatalf("GELU(%g): vector %g, Go %g", v, vec[i], want)
		}
	}
	copy(vec, x)
	done, sum := expShiftVector(vec, 3)
	var want float64
	for i := 0; i < done; i++ {
		e := Exp32(x[i] - 3)
		want += float64(e)
		if d := math.Abs(float64(vec[i]-e)) / float64(e); d > 1e-6 && e > 1e-37 {
			t.Fatalf("exp(%g): vector %g, Exp32 %g", x[i]-3, vec[i], e)
		}
	}
	if math.Abs(sum-want) > 1e-6*want {
		t.Fatalf("sum of exponentials: vector %g, Go %g", sum, want)
	}
	// The attention's scaled softmax on padded rows of odd lengths, against
	// scaling then Softmax.
	for _, n := range []int{1, 5, 8, 9, 16, 197} {
		row := make([]float32, (n+7)&^7)
		for i := range row {
			row[i] = 8 * x[(n*7+i)%len(x)]
		}
		want := append([]float32(nil), row[:n]...)
		if !softmaxVector(row, n, 0.125) {
			break
		}
		for i := range want {
			want[i] *= 0.125
		}
		Softmax(want)
		for i, w := range want {
			if d := math.Abs(float64(row[i] - w)); d > 1e-6*math.Max(1e-3, float64(w)) {
				t.Fatalf("softmax n=%d: [%d] = %g, Go %g", n, i, row[i], w)
			}
		}
	}
	// The GEMM's tile epilogue: bias and/or GELU on 1-6 rows of 16 floats
	// with a row stride, against the scalar formulas; nothing else written.
	const ldc = 21
	bias := randSlice(rng, gemmNR)
	for rows := 1; rows <= gemmMR; rows++ {
		for _, withBias := range []bool{false, true} {
			for _, gelu := range []bool{false, true} {
				tile := append([]float32(nil), x[:gemmMR*ldc]...)
				var b []float32
				if withBias {
					b = bias
				}
				if !epilogueVector(tile, ldc, rows, b, gelu) {
					t.Skip("no vector epilogue in this build")
				}
				for i, v := range x[:gemmMR*ldc] {
					r, j := i/ldc, i%ldc
					if r < rows && j < gemmNR {
						if withBias {
							v += bias[j]
						}
						if gelu {
							v = 0.5 * v * (1 + Erf32(v*invSqrt2))
						}
					}
					if d := math.Abs(float64(tile[i] - v)); d > 1e-6*math.Max(1, math.Abs(float64(v))) {
						t.Fatalf("epilogue rows=%d bias=%v gelu=%v: [%d,%d] = %g, Go %g", rows, withBias, gelu, r, j, tile[i], v)
					}
				}
			}
		}
	}
}

// geluDerivExact is geluDeriv in float64 with math.Erf and math.Exp.
func geluDerivExact(x float64) float64 {
	cdf := 0.5 * (1 + math.Erf(x/math.Sqrt2))
	pdf := math.Exp(-0.5*x*x) / math.Sqrt(2*math.Pi)
	return cdf + x*pdf
}

// The exact GELU's derivative in float32 (GELUGrad: Erf32, Exp32 and the
// vector kernel where this build has one) against its float64 twin
// (math.Erf, math.Exp), densely over [-12, 12], around the flush of φ at
// |x| ≈ 13.2 and at the float32 ends, within 1e-6 absolute (the derivative
// lies in [-0.17, 1.13]); NaN stays NaN.
func TestGELUGradTwin(t *testing.T) {
	xs := []float32{0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 13.2, -13.2, 13.22, -13.22, 20, -20, 1e4, -1e4,
		math.MaxFloat32, -math.MaxFloat32, float32(math.NaN())}
	for i := -120000; i <= 120000; i++ {
		xs = append(xs, float32(i)/10000)
	}
	g := make([]float32, len(xs))
	for i := range g {
		g[i] = 1
	}
	GELUGrad(g, xs)
	var worst float64
	for i, x := range xs {
		want := geluDerivExact(float64(x))
		if math.IsNaN(want) {
			if !math.IsNaN(float64(g[i])) {
				t.Fatalf("GELU'(%g) = %g, want NaN", x, g[i])
			}
			continue
		}
		d := math.Abs(float64(g[i]) - want)
		if !(d <= 1e-6) {
			t.Fatalf("GELU'(%g): %g, twin %g", x, g[i], want)
		}
		worst = max(worst, d)
	}
	t.Logf("worst |float32 − float64| %.3g", worst)
}
