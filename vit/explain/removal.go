package explain

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// The token-removal test (spec §3.9 "Perturbation test"): every image's
// tokens are ordered by an importance map; tokens are then dropped from the
// sequence (after the position embeddings, vit.Options.Keep) in that order
// and the model's accuracy is read at every count.
//
// Deviations from the original explain_perturbation.py:
//   - A15: every count of removed tokens 0..P is evaluated (the original kept
//     1..48 of 49 tokens, never all of them nor none), the x axis is the true
//     fraction removed, and the AUC is the trapezoid area under accuracy vs
//     fraction removed. The original's own number, Σacc/(max·P) over 1..P−1
//     removed, is reported beside it (AUC).
//   - A17: random orderings are drawn per image (the original's -random path
//     is broken, and meant one permutation shared by all images), from
//     seeds 0..k-1 mixed with the image index, so runs are reproducible.
//   - A14: any CLS model and patch grid, not only B/32 with 49 tokens.
//   - Removing tokens keeps the others in their original order (the
//     original's mask lists them by importance; attention is permutation
//     equivariant, so only rounding can differ).

// Orderings of the removal test.
const (
	OrderOurs   = "ours"   // the paper's map, descending
	OrderChefer = "chefer" // Chefer et al.'s relevance, descending
	OrderProbe  = "probe"  // ascending Σ over blocks of the hs probe rank
	OrderRandom = "random" // seeded per-image permutations
)

// Directions of removal.
const (
	Negative = "negative" // least important first: a good map keeps accuracy up
	Positive = "positive" // most important first: a good map makes it fall fast
)

// AllOrderings lists the orderings in report order.
var AllOrderings = []string{OrderOurs, OrderChefer, OrderProbe, OrderRandom}

// RemovalRow is the prediction of one image with some tokens removed:
// table "removal". Seed is the random ordering's seed, -1 otherwise.
type RemovalRow struct {
	Image     int32  `parquet:"image"`
	Label     int32  `parquet:"label"`
	Ordering  string `parquet:"ordering,dict"`
	Seed      int32  `parquet:"seed"`
	Direction string `parquet:"direction,dict"`
	Removed   int32  `parquet:"removed"` // image tokens removed, 0..P
	Pred      int32  `parquet:"pred"`
	Correct   bool   `parquet:"correct"`
}

// ErrNoProbeRanks means the probe results lack an image of the test set:
// the folders were made over different images.
var ErrNoProbeRanks = errors.New("no probe ranks in the probe results")

// RemovalSpec says what the test computes.
type RemovalSpec struct {
	Orderings   []string // subset of AllOrderings
	Directions  []string // Negative and/or Positive
	RandomSeeds int      // random orderings per image (10 in the paper)
	// DoubleSoftmax selects the original's loss for the paper's map (A13).
	DoubleSoftmax bool
	// ProbeRankSums holds, per image index, the summed probe rank of each
	// image token (needed by OrderProbe; see probe.TokenRankSums).
	ProbeRankSums map[int][]float64
}

// Params are the fields that change results, for the manifest.
func (s RemovalSpec) Params() map[string]string {
	return map[string]string{"orderings": strings.Join(s.Orderings, ","), "directions": strings.Join(s.Directions, ","),
		"random_seeds": strconv.Itoa(s.RandomSeeds), "double_softmax": strconv.FormatBool(s.DoubleSoftmax),
		"target": "label"}
}

// Validate checks the spec against a model.
func (s RemovalSpec) Validate(c vit.Config) error {
	if !c.ClassToken {
		return errors.New("removal test: the maps and the classifier read [CLS]; this model has none")
	}
	if len(s.Orderings) == 0 || len(s.Directions) == 0 {
		return errors.New("removal test: no orderings or no directions")
	}
	for _, o := range s.Orderings {
		if !slices.Contains(AllOrderings, o) {
			return fmt.Errorf("unknown ordering %q (want %s)", o, strings.Join(AllOrderings, ", "))
		}
		if o == OrderProbe && s.ProbeRankSums == nil {
			return errors.New("ordering probe needs probe ranks (a probe results folder over the same images)")
		}
		if o == OrderRandom && s.RandomSeeds < 1 {
			return errors.New("ordering random needs at least one seed")
		}
	}
	for _, d := range s.Directions {
		if d != Negative && d != Positive {
			return fmt.Errorf("unknown direction %q (want %s or %s)", d, Negative, Positive)
		}
	}
	return nil
}

// Order returns image-token sequence positions sorted by descending score
// (scores[p] belongs to patch p, i.e. position first+p), ties broken by the
// lower position so orderings are deterministic.
func Order(scores []float64, first int) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	for i := range idx {
		idx[i] += first
	}
	return idx
}

// RandomOrder is the seed-th random ordering of an image's P tokens.
func RandomOrder(seed, image, P, first int) []int {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(image)))
	perm := rng.Perm(P)
	for i := range perm {
		perm[i] += first
	}
	return perm
}

// kept returns the positions left after removing n tokens of order (by
// descending importance) in a direction: every prefix token ([CLS], the
// distillation token or registers: positions below first, which carry no
// image content and which the classifier may read) in order, then the kept
// image tokens ascending.
func kept(order []int, n, first int, dir string) []int {
	P := len(order)
	var rest []int
	if dir == Negative {
		rest = order[:P-n] // the least important go first
	} else {
		rest = order[n:]
	}
	keep := make([]int, first, first+len(rest))
	for i := range keep {
		keep[i] = i
	}
	keep = append(keep, rest...)
	slices.Sort(keep[first:])
	return keep
}

// evaluator predicts one image under token selections, remembering each
// selection it has seen: every ordering shares the full and the [CLS]-only
// sequence.
type evaluator struct {
	m      *vit.Model
	pixels *vit.Tensor
	memo   map[string]int
}

func (e *evaluator) predict(keep []int) (int, error) {
	key := fmt.Sprint(keep)
	if p, ok := e.memo[key]; ok {
		return p, nil
	}
	tr, err := e.m.Forward(e.pixels, vit.Options{Keep: keep})
	if err != nil {
		return 0, err
	}
	p := lens.Argmax(tr.Logits)
	e.memo[key] = p
	return p, nil
}

// Curve returns the model's prediction with 0..P tokens removed in the
// given order (image-token positions, most important first).
func Curve(m *vit.Model, pixels *vit.Tensor, order []int, dir string) ([]int, error) {
	e := &evaluator{m: m, pixels: pixels, memo: map[string]int{}}
	return e.curve(order, dir)
}

func (e *evaluator) curve(order []int, dir string) ([]int, error) {
	preds := make([]int, len(order)+1)
	for n := range preds {
		p, err := e.predict(kept(order, n, e.m.Config.FirstImageToken(), dir))
		if err != nil {
			return nil, err
		}
		preds[n] = p
	}
	return preds, nil
}

// RemoveImage runs the whole test on one image and returns its rows.
func RemoveImage(m *vit.Model, pixels *vit.Tensor, index, label int, spec RemovalSpec) ([]RemovalRow, error) {
	c := m.Config
	first, P := c.FirstImageToken(), c.NumPatches()
	type ordering struct {
		name  string
		seed  int
		order []int
	}
	var orders []ordering
	need := func(o string) bool { return slices.Contains(spec.Orderings, o) }
	if need(OrderOurs) || need(OrderChefer) {
		mp, err := Map(m, pixels, label, Options{DoubleSoftmax: spec.DoubleSoftmax, NoChefer: !need(OrderChefer)})
		if err != nil {
			return nil, err
		}
		if need(OrderOurs) {
			orders = append(orders, ordering{OrderOurs, -1, Order(widen(mp.Ours), first)})
		}
		if need(OrderChefer) {
			orders = append(orders, ordering{OrderChefer, -1, Order(widen(mp.Chefer), first)})
		}
	}
	if need(OrderProbe) {
		sums, ok := spec.ProbeRankSums[index]
		if !ok || len(sums) != P {
			return nil, fmt.Errorf("image %d: %w (want %d tokens)", index, ErrNoProbeRanks, P)
		}
		neg := make([]float64, P)
		for p, s := range sums {
			neg[p] = -s // a lower rank sum is more important
		}
		orders = append(orders, ordering{OrderProbe, -1, Order(neg, first)})
	}
	if need(OrderRandom) {
		for s := 0; s < spec.RandomSeeds; s++ {
			orders = append(orders, ordering{OrderRandom, s, RandomOrder(s, index, P, first)})
		}
	}
	e := &evaluator{m: m, pixels: pixels, memo: map[string]int{}}
	var rows []RemovalRow
	for _, o := range orders {
		for _, dir := range spec.Directions {
			preds, err := e.curve(o.order, dir)
			if err != nil {
				return nil, err
			}
			for n, p := range preds {
				rows = append(rows, RemovalRow{Image: int32(index), Label: int32(label), Ordering: o.name, Seed: int32(o.seed),
					Direction: dir, Removed: int32(n), Pred: int32(p), Correct: p == label})
			}
		}
	}
	return rows, nil
}

func widen(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// AUC returns two areas under acc, the accuracy with 0..P image tokens
// removed (acc[n] for n removed, P = len(acc)−1):
//
//   - trapezoid: the trapezoid area under accuracy against the fraction
//     removed n/P, over every count 0..P;
//   - original: the number src/plots/explainability.py prints (spec §3.9,
//     A15), np.sum(acc)/(np.max(acc)·P) over the counts the original
//     evaluates, 1..P−1 removed (it keeps 1..48 of 49 tokens, never all
//     nor none), with its denominator P (49 there) although it sums P−1
//     points.
//
// NaN when acc is too short (P < 1; for the original's, P < 2) or, for the
// original's, when its maximum is 0.
func AUC(acc []float64) (trapezoid, original float64) {
	P := len(acc) - 1
	if P < 1 {
		return math.NaN(), math.NaN()
	}
	for i := 1; i <= P; i++ {
		trapezoid += (acc[i-1] + acc[i]) / 2 / float64(P)
	}
	if P < 2 {
		return trapezoid, math.NaN()
	}
	var sum, peak float64
	for _, v := range acc[1:P] {
		sum += v
		peak = math.Max(peak, v)
	}
	original = math.NaN()
	if peak > 0 {
		original = sum / (peak * float64(P))
	}
	return trapezoid, original
}
