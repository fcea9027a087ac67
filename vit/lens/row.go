package lens

import (
	"math"

	"vitlens/vit"
)

// The lens reads each of a B/16's 48 rows per token (4 sites × 12 blocks)
// once into logits and then out of them: rank, top-k, entropy and KL. Those
// passes touch 9.5 M logits per image, as many as the class-space products
// produce, so they run eight lanes at a time where the CPU has AVX2
// (row_amd64.s) and each row is read in as few passes as possible while it
// is in L1. The Go loops here are the kernels' twins and the portable path.

// klReference is one token's reference distribution (its last block's hs)
// for rowStats: its probabilities in float32 (the row pass's lanes), and
// the float64 sums Σp and Σp·log p over those same float32 p.
type klReference struct {
	p           []float32
	sumP, pLogP float64
}

// newKLReference makes the reference of a row of logits into p (its
// length; the reference keeps it).
func newKLReference(p, logits []float32) klReference {
	m := copyMax(p, logits)
	s := vit.ExpShift(p, m)
	lse := math.Log(s)
	inv := float32(1 / s)
	r := klReference{p: p}
	for k, e := range p {
		p[k] = e * inv
		r.sumP += float64(p[k])
		r.pLogP += float64(p[k]) * (float64(logits[k]) - float64(m) - lse)
	}
	return r
}

// rowStats reads one row of logits: the target's rank (the classes whose
// logit is strictly above the target's, lt), the entropy of
// q = softmax(logits) and KL(ref ‖ q), in nats. exps is scratch of the
// row's length. With m the row's max, e = exp(logits−m) (vit.ExpShift,
// float32) and lse = log Σe:
//
//	H(q) = lse − Σe·(logits−m)/Σe,  KL = Σp·log p − Σp·(logits−m) + Σp·lse.
//
// The sums run in float32 lanes of about C/8 terms each, added in float64:
// entropy and KL carry the float32 exponential's relative 1e-6 on lse and
// on the sums, about 1e-6 of the logits' spread, not float64's 1e-15
// (EntropyKL of LogSoftmax is the float64 twin; the tests bound the gap).
func rowStats(logits, exps []float32, lt float32, ref klReference) (rank int, entropy, kl float64) {
	m := copyMax(exps, logits)
	vit.ExpShift(exps, m) // its sum is taken again below with the other two, lane by lane
	var lanes [3][8]float32
	done, rank := rowSumsVector(logits, exps, ref.p, lt, m, &lanes)
	var s, sv, pv float64
	for l := range lanes[0] {
		s += float64(lanes[0][l])
		sv += float64(lanes[1][l])
		pv += float64(lanes[2][l])
	}
	for k := done; k < len(logits); k++ {
		v := logits[k]
		if v > lt {
			rank++
		}
		d, e := float64(v-m), float64(exps[k])
		s += e
		sv += e * d
		pv += float64(ref.p[k]) * d
	}
	lse := math.Log(s)
	return rank, max(lse-sv/s, 0), max(ref.pLogP-pv+ref.sumP*lse, 0)
}

// copyMax copies src into dst and returns its largest element.
func copyMax(dst, src []float32) float32 {
	done, m := copyMaxVector(dst, src)
	if done == 0 {
		m = float32(math.Inf(-1))
	}
	for k := done; k < len(src); k++ {
		dst[k] = src[k]
		m = max(m, src[k])
	}
	return m
}

// firstAbove is the index of the first v[i] > above, len(v) when none is.
func firstAbove(v []float32, above float32) int {
	for i := firstAboveVector(v, above); i < len(v); i++ {
		if v[i] > above {
			return i
		}
	}
	return len(v)
}
