package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestNormTails(t *testing.T) {
	// Values from scipy.stats.norm (1.10.1).
	cases := []struct{ z, cdf, sf float64 }{
		{0, 0.5, 0.5},
		{0.5, 0.6914624612740131, 0.3085375387259869},
		{1, 0.8413447460685429, 0.15865525393145707},
		{-1, 0.15865525393145707, 0.8413447460685429},
		{3, 0.9986501019683699, 0.0013498980316300933},
		{10, 1, 7.61985302416047e-24},
		{37, 1, 5.7255712225239266e-300},
		{-8, 6.22096057427174e-16, 0.9999999999999993},
	}
	// Go's erfc (FreeBSD msun) and Cephes' differ by a few ulps; in the far
	// tail exp(−z²/2) magnifies that to ~3e-14 relative at z = 37.
	for _, c := range cases {
		if e := relErr(normCDF(c.z), c.cdf); e > 1e-14 {
			t.Errorf("normCDF(%v) = %.17g, scipy %.17g", c.z, normCDF(c.z), c.cdf)
		}
		if e := relErr(normSF(c.z), c.sf); e > 1e-13 {
			t.Errorf("normSF(%v) = %.17g, scipy %.17g", c.z, normSF(c.z), c.sf)
		}
	}
}

// The exact distribution against enumeration of all 2ⁿ sign patterns.
func TestExactSignedRankEnumeration(t *testing.T) {
	const n = 10
	maxSum := n * (n + 1) / 2
	counts := make([]int, maxSum+1)
	for mask := range 1 << n {
		s := 0
		for r := 1; r <= n; r++ {
			if mask&(1<<(r-1)) != 0 {
				s += r
			}
		}
		counts[s]++
	}
	for r := 0; r <= maxSum; r++ {
		ge, le := 0, 0
		for s, c := range counts {
			if s >= r {
				ge += c
			}
			if s <= r {
				le += c
			}
		}
		if got, want := exactSignedRankP(n, r, Greater), float64(ge)/1024; got != want {
			t.Errorf("P(R+ >= %d) = %v, want %v", r, got, want)
		}
		if got, want := exactSignedRankP(n, r, Less), float64(le)/1024; got != want {
			t.Errorf("P(R+ <= %d) = %v, want %v", r, got, want)
		}
	}
}

// slowWilcoxonApprox is the obviously-correct twin of the merge ranking:
// sort indices by |d|, average ranks over tie groups, normal approximation.
func slowWilcoxonApprox(x, y []float64) (rPlus, z float64) {
	var d []float64
	for i := range x {
		if v := x[i] - y[i]; v != 0 {
			d = append(d, v)
		}
	}
	idx := make([]int, len(d))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmpFloat(math.Abs(d[a]), math.Abs(d[b])) })
	n := float64(len(d))
	se := n * (n + 1) * (2*n + 1)
	for lo := 0; lo < len(idx); {
		hi := lo
		for hi < len(idx) && math.Abs(d[idx[hi]]) == math.Abs(d[idx[lo]]) {
			hi++
		}
		avg := float64(lo+1+hi) / 2
		for _, i := range idx[lo:hi] {
			if d[i] > 0 {
				rPlus += avg
			}
		}
		t := float64(hi - lo)
		se -= 0.5 * t * (t*t - 1)
		lo = hi
	}
	return rPlus, (rPlus - n*(n+1)/4) / math.Sqrt(se/24)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestWilcoxonMatchesSlowTwin(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x, y := make([]float64, 3000), make([]float64, 3000)
	for i := range x {
		x[i] = float64(rng.IntN(40)) / 40 // coarse grid: many ties and zeros
		y[i] = float64(rng.IntN(40)) / 40
	}
	res, err := WilcoxonSignedRank(x, y, Greater)
	if err != nil {
		t.Fatal(err)
	}
	rPlus, z := slowWilcoxonApprox(x, y)
	if res.Statistic != rPlus || relErr(res.Z, z) > 1e-12 {
		t.Errorf("R+ %v z %v, slow twin R+ %v z %v", res.Statistic, res.Z, rPlus, z)
	}
	// Swapping x and y mirrors the one-sided tests.
	less, _ := WilcoxonSignedRank(y, x, Less)
	if less.P != res.P {
		t.Errorf("P(greater; x, y) = %v but P(less; y, x) = %v", res.P, less.P)
	}
}

func TestWilcoxonMillionPairs(t *testing.T) {
	if testing.Short() {
		t.Skip("1e6 pairs")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	n := 1_000_000
	x, y := make([]float64, n), make([]float64, n)
	for i := range x {
		x[i] = 1 - float64(rng.IntN(1000))/1000 // identifiability-like scores
		y[i] = 1 - float64(rng.IntN(1000))/1000
	}
	start := time.Now()
	res, err := WilcoxonSignedRank(x, y, Greater)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1e6 pairs in %v: %+v", time.Since(start), res)
	if res.Method != "approx" || !(res.P > 0 && res.P < 1) {
		t.Errorf("unexpected result %+v", res)
	}
}

func TestWilcoxonErrors(t *testing.T) {
	cases := []struct {
		name string
		x, y []float64
		alt  Alternative
	}{
		{"mismatched", []float64{1, 2}, []float64{1}, Greater},
		{"empty", nil, nil, Greater},
		{"nan", []float64{1, math.NaN()}, []float64{0, 0}, Greater},
		{"inf-inf", []float64{math.Inf(1)}, []float64{math.Inf(1)}, Less},
		{"all zero", []float64{1, 2, 3}, []float64{1, 2, 3}, TwoSided},
		{"all zero n>50", make([]float64, 60), make([]float64, 60), TwoSided},
		{"bad alternative", []float64{1}, []float64{0}, "bigger"},
	}
	for _, c := range cases {
		if _, err := WilcoxonSignedRank(c.x, c.y, c.alt); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

func TestPermutationTest(t *testing.T) {
	values := []float64{0.9, 0.8, 0.85, 0.2, 0.3, 0.1, 0.25, 0.4, 0.15, 0.35}
	labels := []bool{true, true, true, false, false, false, false, false, false, false}

	obs, p, err := PermutationTest(values, labels, MeanDiff, 300, 7)
	if err != nil {
		t.Fatal(err)
	}
	if want := MeanDiff(values[:3], values[3:]); math.Abs(obs-want) > 1e-15 {
		t.Errorf("observed %v, want %v", obs, want)
	}
	// The true split is the most extreme of the C(10,3) = 120 splits, so
	// no permutation can strictly exceed it.
	if p != 0 {
		t.Errorf("p = %v for a perfectly separated split, want 0", p)
	}
	_, p2, _ := PermutationTest(values, labels, MeanDiff, 300, 7)
	if p2 != p {
		t.Errorf("same seed gave p %v then %v", p, p2)
	}
}

// Against the exact permutation p-value from enumerating every split, for
// both the smaller-group-first and the larger-group-first code paths.
func TestPermutationTestExact(t *testing.T) {
	values := []float64{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5}
	for _, na := range []int{4, 7} {
		labels := make([]bool, len(values))
		for i := range na {
			labels[i*len(values)/na] = true
		}
		obs, p, err := PermutationTest(values, labels, MeanDiff, 40000, 11)
		if err != nil {
			t.Fatal(err)
		}
		above, total := 0, 0
		for mask := range 1 << len(values) {
			var a, b []float64
			for i, v := range values {
				if mask&(1<<i) != 0 {
					a = append(a, v)
				} else {
					b = append(b, v)
				}
			}
			if len(a) != na {
				continue
			}
			total++
			if MeanDiff(a, b) > obs {
				above++
			}
		}
		exact := float64(above) / float64(total)
		sd := math.Sqrt(exact * (1 - exact) / 40000)
		if math.Abs(p-exact) > 5*sd+1e-9 {
			t.Errorf("na=%d: p %v, exact %v (sd %.3g)", na, p, exact, sd)
		}
		_, pOther, _ := PermutationTest(values, labels, MeanDiff, 40000, 12)
		if pOther == p {
			t.Logf("na=%d: seeds 11 and 12 gave the same p %v", na, p)
		}
	}
}

func TestPermutationTestErrors(t *testing.T) {
	v := []float64{1, 2, 3}
	cases := []struct {
		name   string
		labels []bool
		stat   func(a, b []float64) float64
		rounds int
	}{
		{"length", []bool{true, false}, MeanDiff, 10},
		{"one group", []bool{true, true, true}, MeanDiff, 10},
		{"rounds", []bool{true, false, false}, MeanDiff, 0},
		{"nil stat", []bool{true, false, false}, nil, 10},
		{"nan stat", []bool{true, false, false}, func(a, b []float64) float64 { return math.NaN() }, 10},
	}
	for _, c := range cases {
		if _, _, err := PermutationTest(v, c.labels, c.stat, c.rounds, 1); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

func TestWelford(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	xs := make([]float64, 1001)
	for i := range xs {
		xs[i] = 1e6 + rng.NormFloat64() // a large offset tests stability
	}
	var all, left, right Welford
	for i, v := range xs {
		all.Add(v)
		if i < 400 {
			left.Add(v)
		} else {
			right.Add(v)
		}
	}
	mean := Mean(xs)
	var ss float64
	for _, v := range xs {
		ss += (v - mean) * (v - mean)
	}
	left.Merge(right)
	for _, w := range []Welford{all, left} {
		if w.Count() != int64(len(xs)) || relErr(w.Mean(), mean) > 1e-14 ||
			relErr(w.Variance(), ss/float64(len(xs))) > 1e-9 ||
			relErr(w.SampleVariance(), ss/float64(len(xs)-1)) > 1e-9 {
			t.Errorf("welford n=%d mean=%v var=%v, two-pass mean=%v var=%v",
				w.Count(), w.Mean(), w.Variance(), mean, ss/float64(len(xs)))
		}
	}
	var empty Welford
	if !math.IsNaN(empty.Mean()) || !math.IsNaN(empty.Variance()) || !math.IsNaN(empty.SampleVariance()) {
		t.Error("empty accumulator should report NaN")
	}
	empty.Merge(all)
	if empty != all {
		t.Error("merging into an empty accumulator should copy it")
	}
}

func TestMean(t *testing.T) {
	if got := Mean([]float32{1, 2, 3, 4}); got != 2.5 {
		t.Errorf("Mean float32 = %v", got)
	}
	if !math.IsNaN(Mean([]float64{})) {
		t.Error("Mean of nothing should be NaN")
	}
}

func TestRidgeErrors(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6}
	y := []float32{1, -1, 1}
	collinear := []float32{1, 2, 2, 4, 3, 6} // column 2 = 2 × column 1
	cases := []struct {
		name      string
		x, y      []float32
		rows, d   int
		alpha     float64
		intercept bool
	}{
		{"x length", x[:5], y, 3, 2, 1, true},
		{"y length", x, y[:2], 3, 2, 1, true},
		{"shape", x, y, 0, 2, 1, true},
		{"negative alpha", x, y, 3, 2, -1, true},
		{"nan alpha", x, y, 3, 2, math.NaN(), true},
		{"nan x", []float32{1, 2, float32(math.NaN()), 4, 5, 6}, y, 3, 2, 1, true},
		{"singular", collinear, y, 3, 2, 0, false},
	}
	for _, c := range cases {
		if _, err := FitRidge(c.x, c.y, c.rows, c.d, 1, c.alpha, c.intercept); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	m, err := FitRidge(x, y, 3, 2, 1, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Predict(x[:3], 2); err == nil {
		t.Error("predict with the wrong length: no error")
	}
	if _, err := FitRidgeLabels(x, []int{0, 1, 2}, 3, 2, 2, 1, true); err == nil {
		t.Error("label 2 of 2 classes: no error")
	}
	if _, err := FitRidgeLabels(x, []int{0, 1}, 3, 2, 2, 1, true); err == nil {
		t.Error("2 labels for 3 rows: no error")
	}
	if _, err := PlusMinusOne([]int{0, 5}, 5); err == nil {
		t.Error("label 5 of 5 classes: no error")
	}
}

// Ridge against its closed form on a case small enough to do by hand:
// one feature, intercept, (Σx̃² + α) w = Σx̃y.
func TestRidgeOneFeature(t *testing.T) {
	x := []float32{0, 1, 2, 3}
	y := []float32{1, 3, 2, 6}
	m, err := FitRidge(x, y, 4, 1, 1, 0.5, true)
	if err != nil {
		t.Fatal(err)
	}
	// x̄ = 1.5, ȳ = 3, Σx̃² = 5, Σx̃y = −1.5·1 − 0.5·3 + 0.5·2 + 1.5·6 = 7.
	w := 7 / 5.5
	b := 3 - 1.5*w
	if math.Abs(m.W[0]-w) > 1e-14 || math.Abs(m.Intercept[0]-b) > 1e-14 {
		t.Errorf("w=%v b=%v, want w=%v b=%v", m.W[0], m.Intercept[0], w, b)
	}
}
