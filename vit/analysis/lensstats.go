package analysis

import (
	"math"

	"vitlens/vit/stats"
)

// LensStats accumulates, per block, the mean entropy and KL-to-last-block
// of hs readouts for [CLS] and for image tokens, streamed row by row.
type LensStats struct {
	entropy, kl [2][]stats.Welford // [0] [CLS], [1] image tokens
}

// NewLensStats is an empty accumulator for depth blocks.
func NewLensStats(depth int) *LensStats {
	l := &LensStats{}
	for i := range 2 {
		l.entropy[i] = make([]stats.Welford, depth)
		l.kl[i] = make([]stats.Welford, depth)
	}
	return l
}

// Add folds in one token's readout (cls: the [CLS] token, else an image
// token); NaNs (a backend without the
// statistics) are left out, so a run without them reads NaN.
func (l *LensStats) Add(block int, cls bool, entropy, kl float32) {
	i := 1
	if cls {
		i = 0
	}
	if !math.IsNaN(float64(entropy)) {
		l.entropy[i][block].Add(float64(entropy))
	}
	if !math.IsNaN(float64(kl)) {
		l.kl[i][block].Add(float64(kl))
	}
}

// fill writes the means of its block into a report row (NaN where empty).
func (l *LensStats) fill(r *BlockRow) {
	b := r.Block
	r.CLSEntropy, r.ImageEntropy = l.entropy[0][b].Mean(), l.entropy[1][b].Mean()
	r.CLSKL, r.ImageKL = l.kl[0][b].Mean(), l.kl[1][b].Mean()
}
