// Package stats holds the statistics the paper's analyses rely on: the paired
// Wilcoxon signed-rank test against random models (spec §3.3, §3.5), the
// label-shuffle permutation test for class- vs context-labelled tokens (§3.4,
// §3.8), ridge regression for the linear probes (§3.10) and small streaming
// summaries. Each test reproduces the library call the original made (scipy
// 1.10.1, sklearn 1.2.1), and the golden fixtures in testdata/stats come from
// tools/reference/make_stats_golden.py.
package stats

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Alternative is the alternative hypothesis of a test, spelled as scipy
// spells it.
type Alternative string

const (
	Greater  Alternative = "greater"
	Less     Alternative = "less"
	TwoSided Alternative = "two-sided"
)

// Result is the outcome of a Wilcoxon signed-rank test.
type Result struct {
	// Statistic is what scipy returns: the rank sum of the positive
	// differences (R+) for one-sided tests, min(R+, R−) for two-sided ones.
	Statistic float64
	// P is the p-value.
	P float64
	// Z is the normal deviate (R+ or min − mean)/sd; NaN for the exact method.
	Z float64
	// N is the number of ranked differences, i.e. pairs with x ≠ y.
	N int
	// Method is "exact" or "approx", the mode scipy's method='auto' picks.
	Method string
}

// exactMaxN is scipy's 'auto' threshold: up to 50 pairs (counted before
// zero differences are dropped) the exact null distribution is used.
const exactMaxN = 50

// WilcoxonSignedRank is the paired Wilcoxon signed-rank test on d = x − y,
// matching scipy.stats.wilcoxon(x, y, alternative=alt) in scipy 1.10.1 with its
// defaults zero_method='wilcox', correction=False, method='auto':
//   - exact null distribution when len(x) <= 50 and no difference is zero;
//     otherwise the normal approximation, with zero differences dropped and
//     the variance reduced by Σ(t³−t)/48 over groups of tied |d|, and no
//     continuity correction;
//   - ties are given average ranks; in the exact mode scipy still uses the
//     exact distribution with ties and truncates a half-integer R+ with
//     int(), which is copied here so the p-values agree;
//   - for alternative "two-sided" the statistic is min(R+, R−), but the exact
//     p-value is computed from R+, again as scipy does.
//
// Sorting is O(n log n) and the exact distribution is only built for n <= 50,
// so a million pairs take well under a second. Unlike scipy, which returns
// NaN, NaN inputs are reported as errors; so are empty or mismatched inputs
// and all-zero differences (scipy raises for the last).
func WilcoxonSignedRank(x, y []float64, alt Alternative) (Result, error) {
	switch alt {
	case Greater, Less, TwoSided:
	default:
		return Result{}, fmt.Errorf("stats: wilcoxon: unknown alternative %q (want greater, less or two-sided)", alt)
	}
	if len(x) != len(y) {
		return Result{}, fmt.Errorf("stats: wilcoxon: x has %d values but y has %d; the test is paired", len(x), len(y))
	}
	if len(x) == 0 {
		return Result{}, errors.New("stats: wilcoxon: no pairs")
	}

	// Positive differences and the magnitudes of negative ones are sorted
	// apart and merged, which gives ranks and signs without an index sort.
	// One buffer: positives fill it from the front, negatives from the back.
	buf := make([]float64, len(x))
	nPos, nNeg, zeros := 0, 0, 0
	for i := range x {
		d := x[i] - y[i]
		switch {
		case d > 0:
			buf[nPos] = d
			nPos++
		case d < 0:
			nNeg++
			buf[len(buf)-nNeg] = -d
		case d == 0:
			zeros++
		default:
			return Result{}, fmt.Errorf("stats: wilcoxon: pair %d gives a NaN difference (x=%v, y=%v)", i, x[i], y[i])
		}
	}
	pos, neg := buf[:nPos], buf[len(buf)-nNeg:]
	exact := len(x) <= exactMaxN && zeros == 0
	count := nPos + nNeg
	if count == 0 {
		return Result{}, errors.New("stats: wilcoxon: every difference x − y is zero")
	}
	slices.Sort(pos)
	slices.Sort(neg)

	var rPlus, rMinus float64
	var tieTerm int64 // Σ t(t²−1) over tied groups, in int64 as numpy does
	rank := 0         // ranks given so far
	for i, j := 0, 0; i < len(pos) || j < len(neg); {
		v := math.Inf(1)
		if i < len(pos) {
			v = pos[i]
		}
		if j < len(neg) && neg[j] < v {
			v = neg[j]
		}
		cp, cn := 0, 0
		for i < len(pos) && pos[i] == v {
			i++
			cp++
		}
		for j < len(neg) && neg[j] == v {
			j++
			cn++
		}
		t := cp + cn
		avg := float64(rank) + float64(t+1)/2
		rank += t
		// Every partial sum is a multiple of 0.5 far below 2⁵³, so these
		// sums are exact and agree bit for bit with numpy's.
		rPlus += float64(cp) * avg
		rMinus += float64(cn) * avg
		if t > 1 {
			tt := int64(t)
			tieTerm += tt * (tt*tt - 1)
		}
	}

	res := Result{N: count, Z: math.NaN(), Statistic: rPlus}
	if alt == TwoSided {
		res.Statistic = math.Min(rPlus, rMinus)
	}
	if exact {
		res.Method = "exact"
		res.P = exactSignedRankP(count, int(rPlus), alt)
		return res, nil
	}

	res.Method = "approx"
	// Same operation order as scipy so that z agrees to the last bit.
	c := float64(count)
	mean := c * (c + 1) * 0.25
	se := c * (c + 1) * (2*c + 1)
	se -= 0.5 * float64(tieTerm)
	se = math.Sqrt(se / 24)
	z := (res.Statistic - mean) / se
	res.Z = z
	switch alt {
	case TwoSided:
		res.P = 2 * normSF(math.Abs(z))
	case Greater:
		res.P = normSF(z)
	case Less:
		res.P = normCDF(z)
	}
	return res, nil
}

// exactSignedRankP sums the exact null distribution of R+ for n ranks
// 1..n. The distribution is kept as subset counts in uint64 (at most 2⁵⁰
// here) and divided by 2ⁿ at the end: scipy's float pmf holds the same
// dyadic numbers exactly, so the sums agree exactly.
func exactSignedRankP(n, rPlus int, alt Alternative) float64 {
	maxSum := n * (n + 1) / 2
	counts := make([]uint64, maxSum+1)
	counts[0] = 1
	for k := 1; k <= n; k++ {
		top := k * (k + 1) / 2
		for s := top; s >= k; s-- {
			counts[s] += counts[s-k]
		}
	}
	sum := func(lo, hi int) float64 { // counts[lo..hi] / 2ⁿ
		var total uint64
		for s := max(lo, 0); s <= min(hi, maxSum); s++ {
			total += counts[s]
		}
		return math.Ldexp(float64(total), -n)
	}
	var p float64
	switch alt {
	case Greater:
		p = sum(rPlus, maxSum)
	case Less:
		p = sum(0, rPlus)
	case TwoSided:
		if rPlus == maxSum/2 {
			return 1
		}
		p = 2 * math.Min(sum(rPlus, maxSum), sum(0, rPlus))
	}
	return math.Min(math.Max(p, 0), 1)
}

// normCDF is Cephes' ndtr, which scipy.stats.norm uses: erf near zero and
// erfc in the tails so that small tail probabilities keep full precision.
func normCDF(a float64) float64 {
	x := a * (1 / math.Sqrt2)
	z := math.Abs(x)
	if z < 1/math.Sqrt2 {
		return 0.5 + 0.5*math.Erf(x)
	}
	y := 0.5 * math.Erfc(z)
	if x > 0 {
		y = 1 - y
	}
	return y
}

// normSF is the upper tail, computed as scipy does: ndtr(−z).
func normSF(z float64) float64 { return normCDF(-z) }
