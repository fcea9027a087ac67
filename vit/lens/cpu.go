package lens

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"vitlens/vit"
)

// CPU is the pure-Go backend.
type CPU struct {
	Model *vit.Model
	proj  *Projector
	// Folded selects the residual-accumulation fast path (see Projector) when
	// nil-or-true; tests force both paths to compare them.
	Folded *bool
	// Clock, when set, hears how long the forward and the lens took, summed
	// over images (and so over threads: thread-seconds, not wall time).
	Clock *CPUClock
	// rows, set by tests, picks foldedReadouts' row reader.
	rows rowReader
	// spare holds traces whose taps only the lens read, for the next
	// forward to copy its taps into (vit.Options.Reuse).
	spare sync.Pool
}

// CPUClock sums the CPU backend's time per stage (`--timings`).
type CPUClock struct{ spent [2]atomic.Int64 }

const (
	clockForward = iota
	clockLens
)

// Forward and Lens are the summed times of each stage so far.
func (k *CPUClock) Forward() time.Duration { return time.Duration(k.spent[clockForward].Load()) }
func (k *CPUClock) Lens() time.Duration    { return time.Duration(k.spent[clockLens].Load()) }

// add adds the time since start to a stage when the clock runs.
func (k *CPUClock) add(stage int, start time.Time) {
	if k != nil {
		k.spent[stage].Add(int64(time.Since(start)))
	}
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
	var rec *vit.Activations
	if req.Record {
		rec = new(vit.Activations)
	}
	start := time.Now()
	reuse, _ := c.spare.Get().(*vit.Trace)
	tr, err := m.Forward(img, vit.Options{Taps: taps, Edit: req.Edit, Keep: keep, AfterBlock: req.AfterBlock, Record: rec, Reuse: reuse})
	c.Clock.add(clockForward, start)
	if err != nil {
		return nil, err
	}
	defer c.Clock.add(clockLens, time.Now())
	if target < 0 {
		target = Argmax(tr.Logits)
	}
	n := len(tr.Tokens)
	depth := m.Config.Depth
	C := c.proj.Classes
	finalLogits := c.proj.Direct(tr.Site(vit.SiteHS, depth-1).Data, n)
	final, finalP := make([]klReference, n), make([]float32, n*C)
	for t := range final {
		final[t] = newKLReference(finalP[t*C:(t+1)*C], finalLogits[t*C:(t+1)*C])
	}
	res := &Result{Target: target, Tokens: tr.Tokens, Logits: tr.Logits, Readouts: make([]Readout, len(req.Sites)*depth),
		Activations: rec}
	for si, s := range req.Sites {
		for b := 0; b < depth; b++ {
			res.Readouts[si*depth+b] = Readout{Site: s, Block: b, K: req.TopK, Rank: make([]int32, n),
				TargetLogit: make([]float32, n), Top: make([]int32, n*req.TopK), Entropy: make([]float32, n),
				KL: make([]float32, n)}
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
		c.foldedReadouts(tr, n, req.Sites, translated, res, final, finalP)
	} else {
		for si, s := range req.Sites {
			for b := 0; b < depth; b++ {
				logits := translated(s, b)
				switch {
				case logits != nil:
				case s == vit.SiteHS && b == depth-1:
					logits = finalLogits // the KL reference's own product, not made twice
				default:
					logits = c.proj.Direct(tr.Site(s, b).Data, n)
				}
				r := &res.Readouts[si*depth+b]
				forTokens(n, C, func(t0, t1 int, sc *tokenScratch) {
					for t := t0; t < t1; t++ {
						r.read(t, logits[t*C:(t+1)*C], target, final[t], sc)
					}
				})
			}
		}
	}
	if taps != req.Taps || req.Taps == (vit.Taps{}) {
		c.spare.Put(trimTrace(tr, req.Taps))
	}
	res.Trace = tr
	return res, nil
}

// foldedReadouts walks the residual stream accumulating E'·x (see
// Projector): two matmuls per block (attn and mlp outputs), then per token,
// split across threads, the running sum updated in place and every asked
// site's row finished and read out while it is in L1. A translated site
// (tuned lens) is projected on its own before the token pass.
//
// Where a platform kernel reads class rows on threads Go does not have
// (vit.ClassRowsKernel: the browser's), a block whose sites are all plain
// lens sites is folded first and its rows read there (kernelReadouts).
func (c *CPU) foldedReadouts(tr *vit.Trace, n int, sites []vit.Site, translated func(vit.Site, int) []float32, res *Result, final []klReference, finalP []float32) {
	p := c.proj
	C, D := p.Classes, p.Dim
	depth := len(c.Model.Blocks)
	zRes := p.Raw(nil, tr.Embed.Data, n) // E'·(residual stream), block by block
	var zAttn, zMLP, zMid []float32
	own := make([][]float32, len(sites))    // per site: its translated logits, or nil
	scales := make([][]float64, len(sites)) // per site: the normalisation's factors, or nil
	for b := 0; b < depth; b++ {
		zAttn = p.Raw(zAttn, tr.Site(vit.SiteAttn, b).Data, n)
		zMLP = p.Raw(zMLP, tr.Site(vit.SiteMLP, b).Data, n)
		plain := true
		for si, s := range sites {
			own[si] = translated(s, b)
			if own[si] == nil {
				scales[si] = p.NormScales(tr.Site(s, b).Data, n)
			}
			plain = plain && own[si] == nil && scales[si] == nil
		}
		if plain && c.classRowsKernel() {
			// The same sums as the token pass below, over whole rows.
			if zMid == nil {
				zMid = make([]float32, n*C)
			}
			for k := range zMid {
				zMid[k] = zAttn[k] + zRes[k]
				zRes[k] = zMid[k] + zMLP[k]
			}
			var z [vit.NumSites][]float32
			z[vit.SiteAttn], z[vit.SiteMLP], z[vit.SiteHSMid], z[vit.SiteHS] = zAttn, zMLP, zMid, zRes
			c.kernelReadouts(tr, b, n, sites, z, res, final, finalP)
			continue
		}
		forTokens(n, C, func(t0, t1 int, sc *tokenScratch) {
			for t := t0; t < t1; t++ {
				prev, attn, mlp := zRes[t*C:(t+1)*C], zAttn[t*C:(t+1)*C], zMLP[t*C:(t+1)*C]
				read := func(si int, z []float32) {
					s := sites[si]
					r := &res.Readouts[si*depth+b]
					if own[si] != nil {
						r.read(t, own[si][t*C:(t+1)*C], res.Target, final[t], sc)
						return
					}
					p.FinishRow(sc.logits, z, tr.Site(s, b).Data[t*D:(t+1)*D])
					if scales[si] != nil {
						c.Model.RescaleLogits(sc.logits, scales[si][t])
					}
					r.read(t, sc.logits, res.Target, final[t], sc)
				}
				// attn is read before its row becomes hs_mid = hs_prev + attn;
				// then prev becomes hs = hs_mid + mlp (the next block's hs_prev).
				for si, s := range sites {
					if s == vit.SiteAttn {
						read(si, attn)
					}
				}
				for k := range attn {
					attn[k] += prev[k]
				}
				for k := range prev {
					prev[k] = attn[k] + mlp[k]
				}
				var z [vit.NumSites][]float32
				z[vit.SiteMLP], z[vit.SiteHSMid], z[vit.SiteHS] = mlp, attn, prev
				for si, s := range sites {
					if s != vit.SiteAttn {
						read(si, z[s])
					}
				}
			}
		})
	}
}

// rowReader is how foldedReadouts reads its rows: rowsAuto, the platform's
// class-row kernel where vit.ClassRowsKernel says there is one, else the
// token pass; tests pick the token pass, or kernelReadouts with its Go twin
// in place of the kernel, to compare the three.
type rowReader int

const (
	rowsAuto rowReader = iota
	rowsTokens
	rowsKernelTwin
)

// classRowsKernel reports whether foldedReadouts hands whole blocks to
// kernelReadouts.
func (c *CPU) classRowsKernel() bool {
	return c.rows == rowsKernelTwin || c.rows == rowsAuto && vit.ClassRowsKernel()
}

// kernelReadouts reads block b's rows of every site (z: each site's raw
// rows, E'·h) in vit.ReadClassRows, and in Go (FinishRow and read, the
// kernel's twin) the rows it leaves, or all of them where it does not run.
func (c *CPU) kernelReadouts(tr *vit.Trace, b, n int, sites []vit.Site, z [vit.NumSites][]float32, res *Result, final []klReference, finalP []float32) {
	if len(sites) == 0 {
		return
	}
	p := c.proj
	C, D := p.Classes, p.Dim
	depth := len(c.Model.Blocks)
	job := vit.ClassRows{Z: make([][]float32, len(sites)), H: make([][]float32, len(sites)), Dim: D,
		Eps: c.Model.Config.LNEps, S: p.S, Bias: p.Bias, Ref: finalP, Tokens: n, Classes: C,
		Target: res.Target, K: res.Readouts[0].K}
	for si, s := range sites {
		job.Z[si], job.H[si] = z[s], tr.Site(s, b).Data
	}
	ran := c.rows != rowsKernelTwin && vit.ReadClassRows(&job)
	sc := &tokenScratch{logits: make([]float32, C), exps: make([]float32, C)}
	for si, s := range sites {
		r := &res.Readouts[si*depth+b]
		for t := range n {
			row := si*n + t
			if o := job.Out; ran && o[5*row] >= 0 {
				r.Rank[t], r.TargetLogit[t] = int32(o[5*row]), float32(o[5*row+1])
				copy(r.TopOf(t), job.Top[row*r.K:(row+1)*r.K])
				h, kl := entropyKL(o[5*row+2], o[5*row+3], o[5*row+4], final[t])
				r.Entropy[t], r.KL[t] = float32(h), float32(kl)
				continue
			}
			p.FinishRow(sc.logits, z[s][t*C:(t+1)*C], tr.Site(s, b).Data[t*D:(t+1)*D])
			r.read(t, sc.logits, res.Target, final[t], sc)
		}
	}
}

// read records token t's rank of target, its logit, the top-k classes, and
// the entropy of its lens distribution and the KL from the last block's
// (final: that token's).
func (r *Readout) read(t int, logits []float32, target int, final klReference, sc *tokenScratch) {
	lt := logits[target]
	rank, h, kl := readRow(r.Top[t*r.K:(t+1)*r.K], logits, sc.exps, lt, final)
	r.Rank[t], r.TargetLogit[t] = int32(rank), lt
	r.Entropy[t], r.KL[t] = float32(h), float32(kl)
}

// tokenScratch is one token chunk's rows: finished logits and their
// exponentials.
type tokenScratch struct{ logits, exps []float32 }

// forTokens splits n tokens of `classes` logits each into at most two
// chunks per thread and runs fn on each, with scratch rows of its own. The
// per-token lens work is tens of microseconds a token: chunks, not a
// goroutine per token, and none for a small model's few logits.
func forTokens(n, classes int, fn func(t0, t1 int, scratch *tokenScratch)) {
	const minChunk = 1 << 15 // logits per chunk, at least about 100 µs of work
	chunks := max(1, min(n, 2*runtime.GOMAXPROCS(0), n*classes/minChunk))
	run := func(i int) {
		fn(i*n/chunks, (i+1)*n/chunks, &tokenScratch{logits: make([]float32, classes), exps: make([]float32, classes)})
	}
	if chunks == 1 {
		run(0)
		return
	}
	vit.Parallel(0, chunks, run)
}

// trimTrace keeps only the raw tensors the caller asked for, so memory does
// not grow with what the lens needed internally, and returns the others as
// a spare trace for a later forward to reuse.
func trimTrace(tr *vit.Trace, want vit.Taps) *vit.Trace {
	spare := new(vit.Trace)
	for s := range vit.NumSites {
		if !want.Sites[s] {
			spare.Sites[s], tr.Sites[s] = tr.Sites[s], nil
		}
	}
	if !want.Embed {
		spare.Embed, tr.Embed = tr.Embed, nil
	}
	return spare
}
