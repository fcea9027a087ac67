package lens

import "math"

// LogSoftmax writes log softmax(logits) into dst (len(logits)), in float64
// so that entropies and divergences of peaked distributions keep their
// digits.
func LogSoftmax(dst []float64, logits []float32) {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var s float64
	for _, v := range logits {
		s += math.Exp(float64(v) - mx)
	}
	lse := mx + math.Log(s)
	for k, v := range logits {
		dst[k] = float64(v) - lse
	}
}

// LogSoftmaxRows is LogSoftmax of every row of an n×classes matrix.
func LogSoftmaxRows(logits []float32, classes int) []float64 {
	out := make([]float64, len(logits))
	for r := 0; r*classes < len(logits); r++ {
		LogSoftmax(out[r*classes:(r+1)*classes], logits[r*classes:(r+1)*classes])
	}
	return out
}

// EntropyKL returns the entropy of q, −Σ q·log q, and KL(p ‖ q) =
// Σ p·(log p − log q), both in nats, from log-probabilities. KL is
// clamped at 0 (rounding can make it a hair negative when p = q).
func EntropyKL(logq, logp []float64) (entropy, kl float64) {
	for k, lq := range logq {
		entropy -= math.Exp(lq) * lq
		if lp := logp[k]; !math.IsInf(lp, -1) {
			kl += math.Exp(lp) * (lp - lq)
		}
	}
	return entropy, max(kl, 0)
}

// klReference is one token's reference distribution (its last-block hs)
// ready for entropyKLOfLogits: its probabilities, Σ p (1 up to rounding)
// and Σ p·log p.
type klReference struct {
	p           []float64
	sumP, pLogP float64
}

// newKLReference prepares the reference of log-probabilities logp.
func newKLReference(logp []float64) klReference {
	r := klReference{p: make([]float64, len(logp))}
	for k, lp := range logp {
		if !math.IsInf(lp, -1) {
			r.p[k] = math.Exp(lp)
			r.sumP += r.p[k]
			r.pLogP += r.p[k] * lp
		}
	}
	return r
}

// entropyKLOfLogits is EntropyKL(LogSoftmax(logits), reference) with one
// exponential per class instead of three (the lens reads out 48 rows per
// token of a B/16): with lse = log Σ e^v and q = e^(v−lse),
// H(q) = lse − Σ q·v and KL(p ‖ q) = Σ p·log p − Σ p·v + Σp·lse. Both are
// differences of numbers about as large as the logits, so they are exact
// to about 1e-15 of the largest logit rather than relative to themselves.
func entropyKLOfLogits(logits []float32, ref klReference) (entropy, kl float64) {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var s, sv, pv float64
	for k, v := range logits {
		e := math.Exp(float64(v) - mx)
		s += e
		sv += e * (float64(v) - mx)
		pv += ref.p[k] * (float64(v) - mx)
	}
	lse := math.Log(s) // of the shifted logits
	return max(lse-sv/s, 0), max(ref.pLogP-pv+ref.sumP*lse, 0)
}
