package stats

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// permutationStream is the second PCG word; fixing it means that the seed
// alone decides every shuffle.
const permutationStream = 0x7669746c656e73 // "vitlens"

// PermutationTest is the label-shuffle test of the class- vs context-labelled
// comparisons (spec §3.4, §3.8, and the accuracy-vs-agreement test of §3.5).
// values[i] belongs to group a when labels[i] is true and to group b
// otherwise; observed = stat(a, b). Each of the rounds draws a uniformly
// random relabelling that keeps the group sizes and recomputes stat, and
//
//	p = #(permuted stat > observed) / rounds
//
// with a strict ">" and without the +1 correction, exactly as the original
// computes it (spec A28), so p can be 0. The original shuffled without a
// seed; here the shuffles come from math/rand/v2's PCG seeded with seed, so
// a result is reproducible and a different seed gives an independent draw.
//
// stat receives views into a scratch buffer, in a shuffled order: it must
// not keep or modify them. An empty group is an error, because every
// statistic would be NaN and a NaN never exceeds the observed value, which
// would report p = 0.
func PermutationTest(values []float64, labels []bool, stat func(a, b []float64) float64, rounds int, seed uint64) (observed, p float64, err error) {
	if len(values) != len(labels) {
		return 0, 0, fmt.Errorf("stats: permutation test: %d values but %d labels", len(values), len(labels))
	}
	if rounds <= 0 {
		return 0, 0, fmt.Errorf("stats: permutation test: rounds must be positive, got %d", rounds)
	}
	if stat == nil {
		return 0, 0, errors.New("stats: permutation test: nil statistic")
	}
	// Group a occupies buf[:na] and group b the rest, in input order.
	buf := make([]float64, 0, len(values))
	for i, v := range values {
		if labels[i] {
			buf = append(buf, v)
		}
	}
	na := len(buf)
	for i, v := range values {
		if !labels[i] {
			buf = append(buf, v)
		}
	}
	if na == 0 || na == len(buf) {
		return 0, 0, fmt.Errorf("stats: permutation test: group sizes %d and %d; both groups need values", na, len(buf)-na)
	}
	observed = stat(buf[:na], buf[na:])
	if math.IsNaN(observed) {
		return observed, 0, errors.New("stats: permutation test: the observed statistic is NaN")
	}

	rng := rand.New(rand.NewPCG(seed, permutationStream))
	// A partial Fisher–Yates over the first min(na, nb) slots draws a
	// uniformly random split whatever order the buffer was left in, so the
	// buffer is never reset and each round costs O(min(na, nb)) plus stat.
	n := len(buf)
	k := min(na, n-na)
	above := 0
	for range rounds {
		for i := range k {
			j := i + rng.IntN(n-i)
			buf[i], buf[j] = buf[j], buf[i]
		}
		var s float64
		if k == na {
			s = stat(buf[:na], buf[na:])
		} else {
			// The shuffled prefix is group b; the rest is a random group a.
			s = stat(buf[k:], buf[:k])
		}
		if s > observed {
			above++
		}
	}
	return observed, float64(above) / float64(rounds), nil
}
