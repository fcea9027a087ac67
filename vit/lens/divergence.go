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
