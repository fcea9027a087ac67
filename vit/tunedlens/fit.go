// Package tunedlens fits the translators of a tuned lens (Belrose et al.
// 2023) to a ViT over a set of images, streaming hidden states image by
// image, and measures how both lenses read held-out images.
//
// For every residual site s (hs, hs_mid) and block b it fits an affine
// translator h ↦ h + W·h + c (lens.Translator) so that the lens distribution
// of each token at (s, b) matches that token's lens distribution at the
// last block's hs, the model's own reading. The last block's hs keeps a
// zero translator: it is the target.
package tunedlens

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"vitlens/vit"
	"vitlens/vit/explain"
	"vitlens/vit/lens"
	"vitlens/vit/stats"
)

// Fit modes.
const (
	FitRidge = "ridge" // closed form: least squares of the last hs on (s, b)
	FitKL    = "kl"    // Adam on KL(final ‖ translated), the paper's objective
)

// Images streams the images a fit reads: Len of them, preprocessed.
type Images interface {
	Len() int
	Image(i int) (*vit.Tensor, error)
}

// Options of Fit.
type Options struct {
	Fit string
	// Ridge is the ridge penalty per token: α = Ridge · tokens seen, so the
	// same setting means the same thing over any number of images.
	Ridge float64
	// Adam (--fit kl): epochs over the images, images per step, learning
	// rate and decoupled weight decay on W (AdamW).
	Epochs      int
	Batch       int
	LR          float64
	WeightDecay float64
	Seed        uint64 // shuffles the images of every epoch
	// Init, when set, is where --fit kl starts (e.g. a ridge fit); zero
	// translators (the plain lens) otherwise.
	Init *lens.Translators
	// EpochLoss, when set, is called after each kl epoch with the mean
	// training loss over its steps (nats per token, summed over pairs).
	EpochLoss func(epoch int, loss float64)
	Progress  func(done, total int)
}

// Validate checks the options in the user's words.
func (o Options) Validate() error {
	switch o.Fit {
	case FitRidge:
		if !(o.Ridge >= 0) || math.IsInf(o.Ridge, 0) {
			return fmt.Errorf("--ridge must be a finite penalty >= 0, got %v", o.Ridge)
		}
	case FitKL:
		if o.Epochs < 1 || o.Batch < 1 {
			return fmt.Errorf("--epochs and --batch must be at least 1")
		}
		if !(o.LR > 0) || !(o.WeightDecay >= 0) {
			return fmt.Errorf("--lr must be > 0 and --weight-decay >= 0")
		}
	default:
		return fmt.Errorf("--fit must be ridge or kl, got %q", o.Fit)
	}
	return nil
}

// pair is one fitted (site, block).
type pair struct {
	site  vit.Site
	block int
}

// pairs lists every fitted (site, block): hs_mid at every block, hs at
// every block but the last (its translator stays zero: it is the target).
func pairs(depth int) []pair {
	var ps []pair
	for _, s := range lens.TranslatorSites {
		for b := range depth {
			if s == vit.SiteHS && b == depth-1 {
				continue
			}
			ps = append(ps, pair{s, b})
		}
	}
	return ps
}

// states runs the forward on images[lo:hi] in parallel and returns their
// residual-site traces.
func states(m *vit.Model, imgs Images, idx []int) ([]*vit.Trace, error) {
	out := make([]*vit.Trace, len(idx))
	errs := make([]error, len(idx))
	taps := vit.TapSites(lens.TranslatorSites...)
	vit.Parallel(0, len(idx), func(i int) {
		img, err := imgs.Image(idx[i])
		if err == nil {
			out[i], err = m.Forward(img, vit.Options{Taps: taps})
		}
		if err != nil {
			errs[i] = fmt.Errorf("image %d: %w", idx[i], err)
		}
	})
	return out, errors.Join(errs...)
}

// Fit fits translators for m over imgs.
func Fit(m *vit.Model, imgs Images, opt Options) (*lens.Translators, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if imgs.Len() == 0 {
		return nil, errors.New("no training images")
	}
	if opt.Fit == FitRidge {
		return fitRidge(m, imgs, opt)
	}
	return fitKL(m, imgs, opt)
}

// fitBatch is how many images the ridge fit runs through the forward at once.
const fitBatch = 16

// fitRidge regresses the last block's hs minus h on h, per (site, block),
// with an unpenalised intercept: W and c of h + W·h + c.
func fitRidge(m *vit.Model, imgs Images, opt Options) (*lens.Translators, error) {
	c := m.Config
	d := c.Dim
	ps := pairs(c.Depth)
	sums := make([]*stats.RidgeSums, len(ps))
	for i := range sums {
		sums[i] = stats.NewRidgeSums(d, d)
	}
	n := imgs.Len()
	for lo := 0; lo < n; lo += fitBatch {
		idx := seq(lo, min(lo+fitBatch, n))
		trs, err := states(m, imgs, idx)
		if err != nil {
			return nil, err
		}
		vit.Parallel(0, len(ps), func(pi int) {
			p := ps[pi]
			for _, tr := range trs {
				x := tr.Site(p.site, p.block).Data
				y := residualTarget(tr.Site(vit.SiteHS, c.Depth-1).Data, x)
				sums[pi].Add(x, y, len(tr.Tokens))
			}
		})
		if opt.Progress != nil {
			opt.Progress(idx[len(idx)-1]+1, n)
		}
	}
	t := lens.NewTranslators(d, c.Depth)
	for pi, p := range ps {
		fit, err := sums[pi].Solve(opt.Ridge * float64(sums[pi].Rows()))
		if err != nil {
			return nil, fmt.Errorf("%s block %d: %w", p.site, p.block, err)
		}
		w, b := make([]float32, d*d), make([]float32, d)
		for in := range d {
			for out := range d {
				w[out*d+in] = float32(fit.W[in*d+out]) // sklearn's coef_ᵀ → out×in
			}
		}
		for out := range d {
			b[out] = float32(fit.Intercept[out])
		}
		t.Set(p.site, p.block, lens.NewTranslator(d, w, b))
	}
	return t, nil
}

// residualTarget is final − x: what the translator must add to x.
func residualTarget(final, x []float32) []float32 {
	y := make([]float32, len(x))
	for i := range x {
		y[i] = final[i] - x[i]
	}
	return y
}

func seq(lo, hi int) []int {
	s := make([]int, hi-lo)
	for i := range s {
		s[i] = lo + i
	}
	return s
}

// adam is AdamW's state for one parameter vector.
type adam struct{ m, v []float64 }

func newAdam(n int) adam { return adam{make([]float64, n), make([]float64, n)} }

const (
	adamBeta1, adamBeta2, adamEps = 0.9, 0.999, 1e-8
)

// step applies one AdamW update (step t ≥ 1) with gradient g to p; decay
// is the decoupled weight decay (0 for biases).
func (a adam) step(p []float32, g []float64, t int, lr, decay float64) {
	c1 := 1 - math.Pow(adamBeta1, float64(t))
	c2 := 1 - math.Pow(adamBeta2, float64(t))
	for i, gi := range g {
		a.m[i] = adamBeta1*a.m[i] + (1-adamBeta1)*gi
		a.v[i] = adamBeta2*a.v[i] + (1-adamBeta2)*gi*gi
		upd := (a.m[i] / c1) / (math.Sqrt(a.v[i]/c2) + adamEps)
		p[i] = float32(float64(p[i]) - lr*(upd+decay*float64(p[i])))
	}
}

// fitKL minimises the mean over tokens of KL(final ‖ translated), summed
// over the (site, block) pairs (each pair's parameters only see its own
// term), by AdamW over minibatches of images in a seeded order.
func fitKL(m *vit.Model, imgs Images, opt Options) (*lens.Translators, error) {
	c := m.Config
	d := c.Dim
	ps := pairs(c.Depth)
	t := lens.NewTranslators(d, c.Depth)
	if opt.Init != nil {
		if opt.Init.Dim != d || opt.Init.Depth != c.Depth {
			return nil, fmt.Errorf("--init translators are for a %d-wide, %d-block model", opt.Init.Dim, opt.Init.Depth)
		}
		for _, p := range ps {
			if tr := opt.Init.At(p.site, p.block); tr != nil {
				t.Set(p.site, p.block, lens.NewTranslator(d, append([]float32(nil), tr.W...), append([]float32(nil), tr.B...)))
			}
		}
	}
	head := lens.NewProjector(m)
	optW, optB := make([]adam, len(ps)), make([]adam, len(ps))
	for i := range ps {
		optW[i], optB[i] = newAdam(d*d), newAdam(d)
	}
	n := imgs.Len()
	steps := (n + opt.Batch - 1) / opt.Batch
	step := 0
	for epoch := range opt.Epochs {
		order := seq(0, n)
		rand.New(rand.NewPCG(opt.Seed, uint64(epoch))).Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		var epochLoss float64
		for s := range steps {
			idx := order[s*opt.Batch : min((s+1)*opt.Batch, n)]
			trs, err := states(m, imgs, idx)
			if err != nil {
				return nil, err
			}
			step++
			losses := make([]float64, len(ps))
			vit.Parallel(0, len(ps), func(pi int) {
				p := ps[pi]
				tr := t.At(p.site, p.block)
				gw, gb := make([]float64, d*d), make([]float64, d)
				tokens := 0
				for _, x := range trs {
					tokens += len(x.Tokens)
				}
				for _, x := range trs {
					losses[pi] += klGrad(m, head, tr, x.Site(p.site, p.block).Data, x.Site(vit.SiteHS, c.Depth-1).Data,
						len(x.Tokens), float64(tokens), gw, gb)
				}
				// Recreated after the update: the packed copy of W is stale.
				optW[pi].step(tr.W, gw, step, opt.LR, opt.WeightDecay)
				optB[pi].step(tr.B, gb, step, opt.LR, 0)
				t.Set(p.site, p.block, lens.NewTranslator(d, tr.W, tr.B))
			})
			for _, l := range losses {
				epochLoss += l / float64(steps)
			}
			if opt.Progress != nil {
				opt.Progress(epoch*steps+s+1, opt.Epochs*steps)
			}
		}
		if opt.EpochLoss != nil {
			opt.EpochLoss(epoch, epochLoss)
		}
	}
	return t, nil
}

// klGrad adds to gw (D×D, out×in) and gb (D) the gradient of Σ_tokens
// KL(p ‖ q)/norm for n tokens of states h, where p is the lens
// distribution of the last block's states final and q that of tr(h), and
// returns that sum. With z = E·LN(h') + β and h' = h + W·h + c:
// ∂KL/∂z = q − p; ∂/∂LN = Eᵀ(q − p); LayerNorm's backward (explain) gives
// g = ∂/∂h'; then ∂/∂W = g·hᵀ and ∂/∂c = g.
func klGrad(m *vit.Model, head *lens.Projector, tr *lens.Translator, h, final []float32, n int, norm float64, gw, gb []float64) float64 {
	d, classes := head.Dim, head.Classes
	hp := tr.Apply(h, n)
	logq := lens.LogSoftmaxRows(head.Direct(hp, n), classes)
	logp := lens.LogSoftmaxRows(head.Direct(final, n), classes)
	gz := make([]float32, n*classes)
	var loss float64
	for i := range gz {
		q, p := math.Exp(logq[i]), math.Exp(logp[i])
		gz[i] = float32((q - p) / norm)
		if p > 0 {
			loss += p * (logp[i] - logq[i]) / norm
		}
	}
	gn := make([]float32, n*d)
	explain.LinearBackward(gn, gz, n, m.Head)
	gh := make([]float32, n*d)
	explain.LayerNormBackward(gh, gn, hp, n, d, m.Norm, m.Config.LNEps)
	for t := range n {
		g, x := gh[t*d:(t+1)*d], h[t*d:(t+1)*d]
		for out, gv := range g {
			if gv == 0 {
				continue
			}
			row := gw[out*d : (out+1)*d]
			for in, xi := range x {
				row[in] += float64(gv) * float64(xi)
			}
			gb[out] += float64(gv)
		}
	}
	return loss
}

// Loss is the fit's objective over imgs: the mean over tokens of KL(final
// ‖ translated), summed over the fitted (site, block) pairs.
func Loss(m *vit.Model, t *lens.Translators, imgs Images) (float64, error) {
	c := m.Config
	head := lens.NewProjector(m)
	ps := pairs(c.Depth)
	var total float64
	tokens := 0
	for lo := 0; lo < imgs.Len(); lo += fitBatch {
		trs, err := states(m, imgs, seq(lo, min(lo+fitBatch, imgs.Len())))
		if err != nil {
			return 0, err
		}
		for _, x := range trs {
			n := len(x.Tokens)
			tokens += n
			logp := lens.LogSoftmaxRows(head.Direct(x.Site(vit.SiteHS, c.Depth-1).Data, n), head.Classes)
			for _, p := range ps {
				h := x.Site(p.site, p.block).Data
				if tr := t.At(p.site, p.block); tr != nil {
					h = tr.Apply(h, n)
				}
				logq := lens.LogSoftmaxRows(head.Direct(h, n), head.Classes)
				for r := range n {
					_, kl := lens.EntropyKL(logq[r*head.Classes:(r+1)*head.Classes], logp[r*head.Classes:(r+1)*head.Classes])
					total += kl
				}
			}
		}
	}
	return total / float64(tokens), nil
}
