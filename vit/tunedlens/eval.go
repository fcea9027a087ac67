package tunedlens

import (
	"fmt"
	"io"

	"vitlens/vit"
	"vitlens/vit/lens"
	"vitlens/vit/stats"
)

// Labelled is Images with each image's true class.
type Labelled interface {
	Images
	Label(i int) int
}

// BlockStats compares both lenses at one block of one site, as means over
// every token of the held-out images: KL from the last block's
// distribution of the same token (nats), identifiability of the true
// class (1 − rank/C) and how often it is the top-1 class.
type BlockStats struct {
	Block      int     `json:"block"`
	KLPlain    float64 `json:"kl_plain"`
	KLTuned    float64 `json:"kl_tuned"`
	IdentPlain float64 `json:"ident_plain"`
	IdentTuned float64 `json:"ident_tuned"`
	Top1Plain  float64 `json:"top1_plain"`
	Top1Tuned  float64 `json:"top1_tuned"`
}

// Report is tuned_lens.json: hs in Blocks, hs_mid in BlocksMid.
type Report struct {
	Fit       string            `json:"fit"`
	Train     int               `json:"train_images"`
	HeldOut   int               `json:"heldout_images"`
	Meta      map[string]string `json:"meta"`
	Blocks    []BlockStats      `json:"blocks"`
	BlocksMid []BlockStats      `json:"blocks_hs_mid"`
}

// Evaluate reads the held-out images through the plain lens and through t.
func Evaluate(m *vit.Model, t *lens.Translators, imgs Labelled, progress func(done, total int)) ([]BlockStats, []BlockStats, error) {
	c := m.Config
	cpu := lens.NewCPU(m)
	sites := lens.TranslatorSites
	type acc struct{ kl, ident, top1 [2]stats.Welford }
	accs := make([][]acc, len(sites))
	for i := range accs {
		accs[i] = make([]acc, c.Depth)
	}
	n := imgs.Len()
	for lo := 0; lo < n; lo += fitBatch {
		idx := seq(lo, min(lo+fitBatch, n))
		pix := make([]*vit.Tensor, len(idx))
		targets := make([]int, len(idx))
		for i, j := range idx {
			var err error
			if pix[i], err = imgs.Image(j); err != nil {
				return nil, nil, fmt.Errorf("image %d: %w", j, err)
			}
			targets[i] = imgs.Label(j)
		}
		for li, tl := range []*lens.Translators{nil, t} {
			res, err := cpu.Analyze(pix, lens.Request{Sites: sites, TopK: 1, Targets: targets, Lens: tl})
			if err != nil {
				return nil, nil, err
			}
			for _, r := range res {
				for si, s := range sites {
					for b := range c.Depth {
						ro, a := r.At(s, b), &accs[si][b]
						for tok, rank := range ro.Rank {
							a.kl[li].Add(float64(ro.KL[tok]))
							a.ident[li].Add(lens.Identifiability(int(rank), c.Classes))
							top1 := 0.0
							if rank == 0 {
								top1 = 1
							}
							a.top1[li].Add(top1)
						}
					}
				}
			}
		}
		if progress != nil {
			progress(idx[len(idx)-1]+1, n)
		}
	}
	out := make([][]BlockStats, len(sites))
	for si := range sites {
		for b, a := range accs[si] {
			out[si] = append(out[si], BlockStats{Block: b, KLPlain: a.kl[0].Mean(), KLTuned: a.kl[1].Mean(),
				IdentPlain: a.ident[0].Mean(), IdentTuned: a.ident[1].Mean(), Top1Plain: a.top1[0].Mean(), Top1Tuned: a.top1[1].Mean()})
		}
	}
	return out[0], out[1], nil
}

// WriteText prints the held-out comparison at hs, one row per block.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "held-out, hs, mean over every token (%d images)\nblock\tkl_plain\tkl_tuned\tident_plain\tident_tuned\ttop1_plain\ttop1_tuned\n", r.HeldOut)
	for _, b := range r.Blocks {
		fmt.Fprintf(w, "%d\t%.4f\t%.4f\t%.3f\t%.3f\t%.3f\t%.3f\n", b.Block+1, b.KLPlain, b.KLTuned, b.IdentPlain, b.IdentTuned, b.Top1Plain, b.Top1Tuned)
	}
}
