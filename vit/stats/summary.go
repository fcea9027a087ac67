package stats

import "math"

// Mean is the arithmetic mean, accumulated in float64 whatever the input
// type. It is NaN for an empty slice, as numpy's mean is.
func Mean[T ~float32 | ~float64](xs []T) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range xs {
		s += float64(v)
	}
	return s / float64(len(xs))
}

// MeanDiff is mean(a) − mean(b), the statistic of the class-vs-context
// permutation tests (spec §3.4, §3.8).
func MeanDiff(a, b []float64) float64 { return Mean(a) - Mean(b) }

// Welford accumulates count, mean and variance in one pass without keeping
// the values, for aggregates over blocks that are streamed image by image
// (the full per-token arrays are too large to hold, spec A33). The zero value
// is an empty accumulator.
type Welford struct {
	n    int64
	mean float64
	m2   float64 // Σ (x − mean)²
}

// Add folds one value in.
func (w *Welford) Add(x float64) {
	w.n++
	delta := x - w.mean
	w.mean += delta / float64(w.n)
	w.m2 += delta * (x - w.mean)
}

// Merge folds another accumulator in (Chan et al.'s pairwise update), so
// that workers can accumulate separately and be combined at the end.
func (w *Welford) Merge(o Welford) {
	if o.n == 0 {
		return
	}
	if w.n == 0 {
		*w = o
		return
	}
	n := w.n + o.n
	delta := o.mean - w.mean
	w.mean += delta * float64(o.n) / float64(n)
	w.m2 += o.m2 + delta*delta*float64(w.n)*float64(o.n)/float64(n)
	w.n = n
}

// Count is the number of values added.
func (w Welford) Count() int64 { return w.n }

// Mean is the running mean; NaN when empty.
func (w Welford) Mean() float64 {
	if w.n == 0 {
		return math.NaN()
	}
	return w.mean
}

// Variance is the population variance (ddof = 0, numpy's default); NaN when
// empty.
func (w Welford) Variance() float64 {
	if w.n == 0 {
		return math.NaN()
	}
	return w.m2 / float64(w.n)
}

// SampleVariance is the unbiased variance (ddof = 1); NaN below two values.
func (w Welford) SampleVariance() float64 {
	if w.n < 2 {
		return math.NaN()
	}
	return w.m2 / float64(w.n-1)
}
