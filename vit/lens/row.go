package lens

import (
	"math"
	"slices"

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
	m, _ := copyMax(p, logits)
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

// readRow reads one row of logits: the k = len(top) best classes into top
// (as TopK), the target's rank (the classes whose logit is strictly above
// the target's, lt), the entropy of q = softmax(logits) and KL(ref ‖ q), in
// nats. exps is scratch of the row's length. With m the row's max,
// e = exp(logits−m) (vit.ExpShift, float32) and lse = log Σe:
//
//	H(q) = lse − Σe·(logits−m)/Σe,  KL = Σp·log p − Σp·(logits−m) + Σp·lse.
//
// The sums run in float32 lanes of about C/8 terms each, added in float64:
// entropy and KL carry the float32 exponential's relative 1e-6 on lse and
// on the sums, about 1e-6 of the logits' spread, not float64's 1e-15
// (EntropyKL of LogSoftmax is the float64 twin; the tests bound the gap).
func readRow(top []int32, logits, exps []float32, lt float32, ref klReference) (rank int, entropy, kl float64) {
	m, laneMax := copyMax(exps, logits)
	topKAtLeast(top, logits, kthLargest(laneMax, len(top)))
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
	entropy, kl = entropyKL(s, sv, pv, ref)
	return rank, entropy, kl
}

// entropyKL finishes readRow's sums s = Σe, sv = Σe·d and pv = Σp·d into
// the entropy and KL(ref ‖ q) in nats, wherever the sums were taken.
func entropyKL(s, sv, pv float64, ref klReference) (entropy, kl float64) {
	lse := math.Log(s)
	return max(lse-sv/s, 0), max(ref.pLogP-pv+ref.sumP*lse, 0)
}

// copyMax copies src into dst and returns its largest element, and the
// largest of each of eight interleaved lanes (lane l: the src[i] with
// i ≡ l mod 8; -Inf where a lane is empty).
func copyMax(dst, src []float32) (m float32, lanes [8]float32) {
	done := copyMaxVector(dst, src, &lanes)
	if done == 0 {
		lanes = [8]float32{}
		for l := range lanes {
			lanes[l] = float32(math.Inf(-1))
		}
	}
	for k := done; k < len(src); k++ {
		v := src[k]
		dst[k] = v
		// max(lanes[k%8], v) without its call: the browser build does
		// every row here, and there max is a runtime call per element.
		// NaN wins, as with max; a signed zero may differ, as a shift alike.
		if v > lanes[k%8] || v != v {
			lanes[k%8] = v
		}
	}
	m = lanes[0]
	for _, v := range lanes[1:] {
		m = max(m, v)
	}
	return m, lanes
}

// kthLargest is the k-th largest lane maximum, a floor under the k-th
// largest logit (k lanes each hold a logit at least that large); -Inf when
// k exceeds the lanes.
func kthLargest(lanes [8]float32, k int) float32 {
	if k > len(lanes) {
		return float32(math.Inf(-1))
	}
	slices.Sort(lanes[:])
	return lanes[len(lanes)-k]
}

// topKAtLeast is TopK given a floor no larger than the k-th largest logit:
// every top-k class then has a logit ≥ floor, and only those are inserted,
// found by firstAbove's vector scan. A row costs one scan and about as many
// insertions as classes above the floor (a handful), instead of one per new
// best-so-far from the row's start.
func topKAtLeast(dst []int32, logits []float32, floor float32) {
	if !(floor > float32(math.Inf(-1))) { // also NaN
		TopK(dst, logits)
		return
	}
	k := len(dst)
	n := 0
	above := math.Nextafter32(floor, float32(math.Inf(-1))) // v > above ⟺ v ≥ floor
	for c := 0; c < len(logits); c++ {
		c += firstAbove(logits[c:], above)
		if c == len(logits) {
			break
		}
		n = min(n+1, k)
		insertTop(dst[:n], logits, c)
		if n == k {
			above = logits[dst[k-1]]
		}
	}
	for i := n; i < k; i++ {
		dst[i] = -1 // only when the floor was above the k-th largest
	}
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
