package lens

import (
	"fmt"
	"runtime"

	"vitlens/vit"
)

// CPU is the pure-Go backend.
type CPU struct {
	Model *vit.Model
	proj  *Projector
	// Folded selects the residual-accumulation fast path (see Projector) when
	// nil-or-true; tests force both paths to compare them.
	Folded *bool
}

// NewCPU prepares the CPU backend for m.
func NewCPU(m *vit.Model) *CPU { return &CPU{Model: m, proj: NewProjector(m)} }

func (c *CPU) Name() string { return fmt.Sprintf("cpu (%d threads)", runtime.GOMAXPROCS(0)) }

func (c *CPU) Close() error { return nil }

// Analyze runs every image, in parallel across images; each forward is
// itself parallel inside its large matmuls.
func (c *CPU) Analyze(images []*vit.Tensor, req Request) ([]*Result, error) {
	if err := req.Validate(c.Model.Config, len(images)); err != nil {
		return nil, err
	}
	out := make([]*Result, len(images))
	errs := make([]error, len(images))
	vit.Parallel(0, len(images), func(i int) {
		var keep []int
		if req.Keep != nil {
			keep = req.Keep[i]
		}
		target := -1
		if req.Targets != nil {
			target = req.Targets[i]
		}
		out[i], errs[i] = c.analyzeOne(images[i], keep, target, req)
		if errs[i] != nil {
			errs[i] = fmt.Errorf("image %d: %w", i, errs[i])
		}
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// useFolded picks the cheaper projection: the folded path costs 2·Depth+1
// matmuls whatever is asked, the direct one a matmul per site and block.
func (c *CPU) useFolded(req Request) bool {
	if c.Folded != nil {
		return *c.Folded
	}
	return len(req.Sites) >= 3
}

func (c *CPU) analyzeOne(img *vit.Tensor, keep []int, target int, req Request) (*Result, error) {
	m := c.Model
	folded := c.useFolded(req)
	taps := req.Taps
	for _, s := range req.Sites {
		taps.Sites[s] = true
	}
	// The last block's hs is every token's reference distribution (KL).
	taps.Sites[vit.SiteHS] = true
	if folded {
		taps.Embed = true
		taps.Sites[vit.SiteAttn] = true
		taps.Sites[vit.SiteMLP] = true
	}
	tr, err := m.Forward(img, vit.Options{Taps: taps, Edit: req.Edit, Keep: keep, AfterBlock: req.AfterBlock})
	if err != nil {
		return nil, err
	}
	if target < 0 {
		target = Argmax(tr.Logits)
	}
	n := len(tr.Tokens)
	depth := m.Config.Depth
	C := c.proj.Classes
	final := LogSoftmaxRows(c.proj.Direct(tr.Site(vit.SiteHS, depth-1).Data, n), C)
	res := &Result{Target: target, Tokens: tr.Tokens, Logits: tr.Logits, Readouts: make([]Readout, len(req.Sites)*depth)}
	readout := func(si int, s vit.Site, b int, logits []float32) {
		r := &res.Readouts[si*depth+b]
		*r = Readout{Site: s, Block: b, K: req.TopK, Rank: make([]int32, n), TargetLogit: make([]float32, n),
			Top: make([]int32, n*req.TopK), Entropy: make([]float32, n), KL: make([]float32, n)}
		logq := make([]float64, C)
		for t := 0; t < n; t++ {
			row := logits[t*C : (t+1)*C]
			r.Rank[t] = int32(Rank(row, target))
			r.TargetLogit[t] = row[target]
			TopK(r.Top[t*req.TopK:(t+1)*req.TopK], row)
			LogSoftmax(logq, row)
			h, kl := EntropyKL(logq, final[t*C:(t+1)*C])
			r.Entropy[t], r.KL[t] = float32(h), float32(kl)
		}
	}
	// translated projects a residual site through its translator, or
	// returns nil where the plain lens applies.
	translated := func(s vit.Site, b int) []float32 {
		if t := req.Lens.At(s, b); t != nil {
			return c.proj.Direct(t.Apply(tr.Site(s, b).Data, n), n)
		}
		return nil
	}
	if folded {
		c.foldedReadouts(tr, n, req.Sites, translated, readout)
	} else {
		for si, s := range req.Sites {
			for b := 0; b < depth; b++ {
				logits := translated(s, b)
				if logits == nil {
					logits = c.proj.Direct(tr.Site(s, b).Data, n)
				}
				readout(si, s, b, logits)
			}
		}
	}
	if taps != req.Taps || req.Taps == (vit.Taps{}) {
		tr = trimTrace(tr, req.Taps)
	}
	res.Trace = tr
	return res, nil
}

// foldedReadouts walks the residual stream accumulating E'·x (see
// Projector); a translated site (tuned lens) is projected on its own.
func (c *CPU) foldedReadouts(tr *vit.Trace, n int, sites []vit.Site, translated func(vit.Site, int) []float32, readout func(int, vit.Site, int, []float32)) {
	p := c.proj
	zPrev := p.Raw(tr.Embed.Data, n)
	for b := range c.Model.Blocks {
		var z [vit.NumSites][]float32
		z[vit.SiteAttn] = p.Raw(tr.Site(vit.SiteAttn, b).Data, n)
		z[vit.SiteMLP] = p.Raw(tr.Site(vit.SiteMLP, b).Data, n)
		z[vit.SiteHSMid] = addInto(zPrev, z[vit.SiteAttn])
		z[vit.SiteHS] = addInto(z[vit.SiteHSMid], z[vit.SiteMLP])
		zPrev = z[vit.SiteHS]
		for si, s := range sites {
			logits := translated(s, b)
			if logits == nil {
				logits = append([]float32(nil), z[s]...)
				mean, inv := p.Stats(tr.Site(s, b).Data, n)
				p.Finish(logits, mean, inv)
				p.Normalize(logits, tr.Site(s, b).Data, n)
			}
			readout(si, s, b, logits)
		}
	}
}

func addInto(a, b []float32) []float32 {
	out := make([]float32, len(a))
	for i := range a {
		out[i] = a[i] + b[i]
	}
	return out
}

// trimTrace keeps only the raw tensors the caller asked for, so memory does
// not grow with what the lens needed internally.
func trimTrace(tr *vit.Trace, want vit.Taps) *vit.Trace {
	for s := range vit.NumSites {
		if !want.Sites[s] {
			tr.Sites[s] = nil
		}
	}
	if !want.Embed {
		tr.Embed = nil
	}
	return tr
}
