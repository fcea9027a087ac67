package gpu

import (
	"fmt"
	"slices"

	"github.com/cogentcore/webgpu/wgpu"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// planKey is everything that shapes a batch's buffers and command sequence.
type planKey struct {
	batch, n int // images, tokens per image (after dropping)
	sites    string
	k        int
	edit     vit.AttnEdit
	taps     vit.Taps
	// lens: the tuned lens's translators, uploaded (Backend.translators),
	// or nil for the plain lens.
	lens *lens.Translators
	// patch: the hooks a patching plan patches (patchKey), "" for none.
	patch string
}

func sitesKey(s []vit.Site) string { return fmt.Sprint(s) }

// sizes lists, in bytes, every buffer a plan allocates, and where each part
// of the readback lies. It is computed before anything is allocated so that
// batches can be split to fit the device's limits and the memory budget.
type sizes struct {
	buffers []sizedBuf
	total   uint64
	rb      readLayout
}

type sizedBuf struct {
	name  string
	bytes uint64
	bound uint64 // largest range bound to one binding
}

// readLayout gives byte offsets in the readback buffer; 0-sized parts absent.
type readLayout struct {
	size                              uint64
	logits, targets, pooled, readouts uint64
	embed                             uint64
	sites                             [vit.NumSites]uint64
	probs, qkv, fc1                   uint64
}

// unitWidth is the embedding width E of m's embedding normalisation, 0
// without one (vit.EmbedNorm).
func unitWidth(m *vit.Model) int {
	if m.Normalize == nil {
		return 0
	}
	return m.Normalize.Proj.Out
}

// unitRows is how many rows the embedding normalisation scales at most:
// every site of the m tokens in one lens dispatch, or the pooled rows.
func unitRows(m, sites int) int { return max(sites*m, m) }

// lensUnitWords is the unit section of "lens_aux" (the head file's bias,
// then unitRows scales), 0 without an embedding normalisation.
func lensUnitWords(c vit.Config, m, sites, unitE int) int {
	if unitE == 0 {
		return 0
	}
	return c.Classes + unitRows(m, sites)
}

// lensRefWords is the reference section of "lens_aux" (the m tokens'
// last-block logits, then their log-sum-exps), 0 without sites.
func lensRefWords(c vit.Config, m, sites int) int {
	if sites == 0 {
		return 0
	}
	return m*c.Classes + m
}

// planSizes lists a plan's buffers; unitE is unitWidth of the model.
func planSizes(c vit.Config, key planKey, sites []vit.Site, unitE int) sizes {
	// PatchLogits made key.patch and checked it: an error cannot happen here
	// (buildPlan reports it if it did).
	patch, _ := parsePatchSpec(c, key.patch, key.n)
	B, N := uint64(key.batch), uint64(key.n)
	M := B * N
	D, H := uint64(c.Dim), uint64(c.Heads)
	NP := uint64(c.NumPatches())
	CPP := uint64(c.Channels * c.PatchSize * c.PatchSize)
	MLP, C := uint64(c.MLPDim), uint64(c.Classes)
	S, depth := uint64(len(sites)), uint64(c.Depth)
	rowWords := uint64(lensRowWords(key.k))
	const f = 4
	var s sizes
	add := func(name string, words uint64) {
		s.buffers = append(s.buffers, sizedBuf{name, words * f, words * f})
		s.total += words * f
	}
	add("pixels", B*uint64(c.Channels*c.ImageSize*c.ImageSize))
	add("keep", M)
	add("cls_pos", B)
	add("targets", B)
	add("x", M*D)
	add("h", M*D)
	add("qkv", max(M*3*D, B*NP*D)) // also holds the patch embeddings
	add("heads", M*D)
	add("update", M*D)
	add("hidden", max(M*MLP, B*NP*CPP, M*D)) // also holds the im2col patches and the norm_pre output
	if key.taps.AttnProbs || patch.hasPoint(vit.HookPattern) {
		add("probs", B*H*N*N)
	}
	if patch != nil {
		add("patch_src", uint64(patch.words)) // the replacements (one image's per hook)
		add("patch_sel", 3*B)                 // each image's site
	}
	add("pooled", B*D)
	add("pooled_norm", B*D)
	if c.DistToken {
		add("pooled_dist", B*D) // the distillation token's row, then normed
		add("pooled_dist_norm", B*D)
	}
	add("logits", B*C)
	if key.lens != nil && S > 0 {
		add("lens_translated", M*D)
	}
	if unitE > 0 {
		// The embedding normalisation's scratch: normed rows and their
		// embeddings, for the lens's largest dispatch (and the B pooled
		// rows).
		rows := uint64(unitRows(int(M), int(S)))
		add("unit_normed", rows*D)
		add("unit_embed", rows*uint64(unitE))
	}
	// The lens kernel's one shared buffer (lensAux): the head file's bias
	// and one scale per row, then every token's last-block logits and
	// log-sum-exp (what KL is measured from). The lens runs after the
	// forward, when the targets (a prediction is only known then) and that
	// reference are: its inputs are kept per block until then.
	if aux := lensUnitWords(c, int(M), int(S), unitE) + lensRefWords(c, int(M), int(S)); aux > 0 {
		add("lens_aux", uint64(aux))
	}
	if S > 0 {
		add("lens_out", depth*S*M*rowWords)
		for b := uint64(0); b < depth; b++ {
			add(fmt.Sprintf("lens_in.%d", b), S*M*D)
		}
	}
	r := &s.rb
	at := func(words uint64) uint64 {
		o := r.size
		r.size += words * f
		return o
	}
	r.logits = at(B * C)
	r.targets = at(B)
	r.pooled = at(B * D)
	r.readouts = at(depth * S * M * rowWords)
	if key.taps.Embed {
		r.embed = at(M * D)
	}
	for st := range vit.NumSites {
		if key.taps.Sites[st] {
			r.sites[st] = at(depth * M * D)
		}
	}
	if key.taps.AttnProbs {
		r.probs = at(depth * B * H * N * N)
	}
	if key.taps.Values {
		r.qkv = at(depth * M * 3 * D)
	}
	if key.taps.FC1 {
		r.fc1 = at(depth * M * MLP)
	}
	// Two readback buffers: pipelined batches alternate between them, so one
	// is read while the next batch's results are copied into the other.
	for _, name := range readbackNames {
		s.buffers = append(s.buffers, sizedBuf{name, r.size, 0})
		s.total += r.size
	}
	return s
}

// fits says whether a plan of these sizes can be allocated, and if not why.
func (s sizes) fits(lim wgpu.Limits, budget uint64) error {
	for _, b := range s.buffers {
		if lim.MaxBufferSize > 0 && b.bytes > lim.MaxBufferSize {
			return fmt.Errorf("buffer %s needs %s, over the device's %s buffer limit", b.name, mib(b.bytes), mib(lim.MaxBufferSize))
		}
		if lim.MaxStorageBufferBindingSize > 0 && b.bound > lim.MaxStorageBufferBindingSize {
			return fmt.Errorf("buffer %s needs %s, over the device's %s storage binding limit", b.name, mib(b.bound), mib(lim.MaxStorageBufferBindingSize))
		}
	}
	if s.total > budget {
		return fmt.Errorf("the batch needs %s of GPU buffers, over the %s memory budget", mib(s.total), mib(budget))
	}
	return nil
}

// readbackNames are the plan's two readback buffers (see planSizes).
var readbackNames = [2]string{"readback", "readback.2"}

// plan is a compiled batch shape: its buffers, bind groups and command
// sequence, reused for every batch of the same key.
type plan struct {
	key                           planKey
	prog                          *program
	pixels, keep, clsPos, targets *buf // inputs, filled by copies each batch
	// readbacks alternate between consecutive batches; the program's copies
	// are recorded into the first and retargeted to the second.
	readbacks [2]*buf
	// slots are the uncollected batches whose results are in readbacks[i].
	slots    [2]*batchRun
	nextSlot int
	rb       readLayout
	sites    []vit.Site
	// patchSrc and patchSel are a patching plan's inputs (nil otherwise),
	// filled by copies each batch like pixels.
	patchSrc, patchSel *buf
}

func (p *plan) release() { p.prog.release() }

// buildPlan allocates and records the forward pass and lens for key.
func (b *Backend) buildPlan(key planKey, sites []vit.Site) (pl *plan, err error) {
	m := b.model
	c := m.Config
	patch, err := parsePatchSpec(c, key.patch, key.n)
	if err != nil {
		return nil, err
	}
	sz := planSizes(c, key, sites, unitWidth(m))
	if err := sz.fits(b.d.limits, uint64(b.opt.MemoryBudget)); err != nil {
		return nil, fmt.Errorf("gpu: batch of %d: %w", key.batch, err)
	}
	prog := newProgram(b.d, b.ks)
	pl = &plan{key: key, prog: prog, rb: sz.rb, sites: sites}
	defer func() {
		if err != nil {
			prog.release()
			pl = nil
		}
	}()
	bufs := map[string]*buf{}
	for _, s := range sz.buffers {
		if slices.Contains(readbackNames[:], s.name) {
			continue
		}
		if bufs[s.name], err = prog.alloc(s.name, s.bytes); err != nil {
			return nil, err
		}
	}
	for i, name := range readbackNames {
		rb, err := newStorage(b.d, name, sz.rb.size, wgpu.BufferUsageMapRead|wgpu.BufferUsageCopyDst)
		if err != nil {
			return nil, err
		}
		prog.owned = append(prog.owned, rb)
		prog.bytes += rb.size
		pl.readbacks[i] = rb
	}
	rb := pl.readbacks[0]
	pl.pixels, pl.keep, pl.clsPos, pl.targets = bufs["pixels"], bufs["keep"], bufs["cls_pos"], bufs["targets"]
	pl.patchSrc, pl.patchSel = bufs["patch_src"], bufs["patch_sel"]

	fw := &forwardRecorder{b: b, key: key, sites: sites, p: prog, bufs: bufs, rb: rb, lay: sz.rb, patch: patch}
	if err := fw.record(); err != nil {
		return nil, err
	}
	if err := prog.finalize(); err != nil {
		return nil, err
	}
	return pl, nil
}

// forwardRecorder records one plan's command sequence.
type forwardRecorder struct {
	b     *Backend
	key   planKey
	sites []vit.Site
	p     *program
	bufs  map[string]*buf
	rb    *buf
	lay   readLayout
	patch *patchSpec // the hooks a patching plan patches, nil otherwise
}

func (f *forwardRecorder) v(name string) view { return whole(f.bufs[name]) }

// distilledLogits is distilled DeiT's output, (head(LN x_cls) +
// head_dist(LN x_dist))/2, as two products into logits, the second
// accumulating; the weights were halved at upload (exact in binary floating
// point), so no scaling pass is needed. The lens reads the mean head instead.
func (f *forwardRecorder) distilledLogits() error {
	c, w, p := f.b.model.Config, f.b.w, f.p
	B, N, D := f.key.batch, f.key.n, c.Dim
	if err := p.matmul("matmul.head", f.v("logits"), f.v("pooled_norm"), whole(w.halfHeadCLSW), optional(w.halfHeadCLSB), B, c.Classes, D, 0); err != nil {
		return err
	}
	if err := p.pool("pool", f.v("pooled_dist"), f.v("x"), B, N, D, false, 1); err != nil {
		return err
	}
	if err := p.layerNorm("layernorm", f.v("pooled_dist_norm"), f.v("pooled_dist"), whole(w.normW), whole(w.normB), B, D, c.LNEps); err != nil {
		return err
	}
	return p.matmul("matmul.head_dist", f.v("logits"), f.v("pooled_dist_norm"), whole(w.halfHeadDistW), optional(w.halfHeadDistB), B, c.Classes, D, matmulAccumulate)
}

func (f *forwardRecorder) record() error {
	m := f.b.model
	c := m.Config
	w := f.b.w
	B, N := f.key.batch, f.key.n
	M, D := B*N, c.Dim
	p := f.p
	NP := c.NumPatches()
	CPP := c.Channels * c.PatchSize * c.PatchSize

	// Embedding: im2col into hidden, patch matmul into qkv, then [CLS],
	// positions and the token gather into x.
	if err := p.patchify("patch_embed", f.v("hidden"), f.v("pixels"), B, c); err != nil {
		return err
	}
	if err := p.matmul("patch_embed", f.v("qkv"), f.v("hidden"), whole(w.patchW), optional(w.patchB), B*NP, D, CPP, 0); err != nil {
		return err
	}
	prefix := view{b: f.b.ks.dummy}
	if w.prefix != nil {
		prefix = whole(w.prefix)
	}
	if err := p.embed("embed", f.v("x"), f.v("qkv"), prefix, whole(w.pos), f.v("keep"), B, N, c); err != nil {
		return err
	}
	if c.NormPre {
		// timm's norm_pre (CLIP's ln_pre), per token, so before or after the
		// token gather alike; out of place, since a dispatch may not read and
		// write one buffer (hidden is free between the patch product and fc1).
		if err := p.layerNorm("layernorm", f.v("hidden"), f.v("x"), whole(w.normPreW), whole(w.normPreB), M, D, c.LNEps); err != nil {
			return err
		}
		p.copy("norm_pre", f.v("hidden"), f.v("x"), uint64(M*D*4))
	}
	if f.key.taps.Embed {
		p.copy("tap.embed", f.v("x"), view{b: f.rb, off: f.lay.embed}, uint64(M*D*4))
	}
	for blk := range m.Blocks {
		if err := f.block(blk); err != nil {
			return err
		}
	}

	// Classifier, then targets: negative ones become the prediction.
	if err := p.pool("pool", f.v("pooled"), f.v("x"), B, N, D, c.Pool == vit.PoolMean, 0); err != nil {
		return err
	}
	if err := p.layerNorm("layernorm", f.v("pooled_norm"), f.v("pooled"), whole(w.normW), whole(w.normB), B, D, c.LNEps); err != nil {
		return err
	}
	if c.DistToken {
		if err := f.distilledLogits(); err != nil {
			return err
		}
	} else if err := p.matmul("matmul.head", f.v("logits"), f.v("pooled_norm"), whole(w.headW), optional(w.headB), B, c.Classes, D, 0); err != nil {
		return err
	}
	if w.unitBias != nil {
		if err := f.unitScales(f.v("pooled_norm"), B, false); err != nil {
			return err
		}
		if err := p.rescale("rescale", f.v("logits"), f.v("lens_aux"), B, c.Classes); err != nil {
			return err
		}
	}
	if err := p.resolveTargets("targets", f.v("targets"), f.v("logits"), B, c.Classes); err != nil {
		return err
	}
	S := len(f.sites)
	if S > 0 {
		// x holds the last block's hs: every token's reference distribution
		// first, then the readouts of every block against it.
		if err := f.lensReference(); err != nil {
			return err
		}
		for blk := range m.Blocks {
			in := f.v(fmt.Sprintf("lens_in.%d", blk))
			if err := f.lens(in, S*M, blk*S*M); err != nil {
				return err
			}
		}
	}
	p.copy("readback", f.v("logits"), view{b: f.rb, off: f.lay.logits}, uint64(B*c.Classes*4))
	p.copy("readback", f.v("targets"), view{b: f.rb, off: f.lay.targets}, uint64(B*4))
	p.copy("readback", f.v("pooled_norm"), view{b: f.rb, off: f.lay.pooled}, uint64(B*D*4))
	if S > 0 {
		p.copy("readback", f.v("lens_out"), view{b: f.rb, off: f.lay.readouts}, uint64(c.Depth*S*M*lensRowWords(f.key.k)*4))
	}
	return nil
}

// lens records the readouts of rows vectors (rows×D in in) at output row
// outRow0, with the embedding normalisation's scales first when the model
// has one.
func (f *forwardRecorder) lens(in view, rows, outRow0 int) error {
	c := f.b.model.Config
	aux, err := f.lensAux(in, rows)
	if err != nil {
		return err
	}
	return f.p.lens("lens", f.v("lens_out"), in, f.v("targets"), aux, f.lensWeights(), rows, c.Dim, c.Classes, f.key.k, f.key.n, f.key.batch, c.LNEps, outRow0)
}

// lensReference records the reference pass over the last block's hs (in
// x after the blocks), normalised like the readouts when the model
// normalises its embedding.
func (f *forwardRecorder) lensReference() error {
	c := f.b.model.Config
	M := f.key.batch * f.key.n
	aux, err := f.lensAux(f.v("x"), M)
	if err != nil {
		return err
	}
	return f.p.lensReference("lens.reference", f.v("x"), f.v("targets"), aux, f.lensWeights(), c.Dim, c.Classes, f.key.k, f.key.n, f.key.batch, c.LNEps)
}

// lensAux is the lens's shared buffer for a dispatch over rows vectors
// (rows×D in in), filling its unit section first when the model normalises
// its embedding.
func (f *forwardRecorder) lensAux(in view, rows int) (lensAux, error) {
	aux := lensAux{v: f.v("lens_aux")}
	if f.b.w.unitBias != nil {
		if err := f.unitScales(in, rows, true); err != nil {
			return aux, err
		}
		aux.unit = true
		aux.ref = lensUnitWords(f.b.model.Config, f.key.batch*f.key.n, len(f.sites), unitWidth(f.b.model))
	}
	return aux, nil
}

func (f *forwardRecorder) lensWeights() lensWeights {
	w := f.b.w
	return lensWeights{normW: whole(w.normW), normB: whole(w.normB), headW: whole(w.headW), headB: whole(w.headB)}
}

// unitScales fills the unit section of "lens_aux" for rows vectors (rows×D
// in in, normed by the final norm first when raw): the head file's bias,
// then s_r = 1/‖P·LN(h_r) + b_P‖ (vit.EmbedNorm).
func (f *forwardRecorder) unitScales(in view, rows int, raw bool) error {
	c, w, p := f.b.model.Config, f.b.w, f.p
	E := unitWidth(f.b.model)
	if raw {
		if err := p.layerNorm("layernorm.unit", f.v("unit_normed"), in, whole(w.normW), whole(w.normB), rows, c.Dim, c.LNEps); err != nil {
			return err
		}
		in = f.v("unit_normed")
	}
	if err := p.matmul("matmul.unit", f.v("unit_embed"), in, whole(w.unitProjW), optional(w.unitProjB), rows, E, c.Dim, 0); err != nil {
		return err
	}
	p.copy("unit.bias", whole(w.unitBias), f.v("lens_aux"), uint64(c.Classes*4))
	return p.rowNorm("rownorm", f.v("lens_aux"), f.v("unit_embed"), rows, E, c.Classes)
}

// wanted reports whether a site's vectors are needed on their own (lens,
// tap or patch) in block blk.
func (f *forwardRecorder) wanted(s vit.Site, blk int) bool {
	return f.key.taps.Sites[s] || slices.Contains(f.sites, s) ||
		(s == vit.SiteAttn && f.patches(vit.HookAttnOut, blk)) || (s == vit.SiteMLP && f.patches(vit.HookMLPOut, blk))
}

// emit hands a site's vectors (M×D in v) to the lens and the taps.
func (f *forwardRecorder) emit(s vit.Site, blk int, v view) error {
	c := f.b.model.Config
	B, N := f.key.batch, f.key.n
	M, D := B*N, c.Dim
	rowBytes := uint64(M * D * 4)
	if f.key.taps.Sites[s] {
		f.p.copy("tap."+s.String(), v, view{b: f.rb, off: f.lay.sites[s] + uint64(blk)*rowBytes}, rowBytes)
	}
	si := slices.Index(f.sites, s)
	if si < 0 {
		return nil
	}
	if tw := f.b.translators.at(s, blk); f.key.lens != nil && tw != nil {
		// The tuned lens: h' = h + h·Wᵀ + c, one D×D product accumulated
		// into a copy of h, read by the lens instead of h.
		t := f.v("lens_translated")
		f.p.copy("lens.translate", v, t, rowBytes)
		if err := f.p.matmul("lens.translate", t, v, whole(tw.w), optional(tw.b), M, D, D, matmulAccumulate); err != nil {
			return err
		}
		v = t
	}
	f.p.copy("lens.store", v, view{b: f.bufs[fmt.Sprintf("lens_in.%d", blk)], off: uint64(si) * rowBytes}, rowBytes)
	return nil
}

// block records block blk, mirroring vit's Model.block: pre-norm
// x + sublayer(LN(x)) or post-norm x + LN(sublayer(x)). When a sublayer's
// output is not needed on its own, the matmul adds it into x directly.
func (f *forwardRecorder) block(blk int) error {
	m := f.b.model
	c := m.Config
	w := f.b.w.blocks[blk]
	p := f.p
	B, N := f.key.batch, f.key.n
	M, D := B*N, c.Dim
	post := c.PostNorm
	x, h := f.v("x"), f.v("h")
	hook := func(pt vit.HookPoint) vit.Hook { return vit.Hook{Point: pt, Block: blk} }
	if err := f.patchAt(hook(vit.HookResidPre), x); err != nil {
		return err
	}

	attnIn := x
	if !post {
		if err := p.layerNorm("layernorm", h, x, whole(w.norm1W), whole(w.norm1B), M, D, c.LNEps); err != nil {
			return err
		}
		attnIn = h
	}
	if err := p.matmul("matmul.qkv", f.v("qkv"), attnIn, whole(w.qkvW), optional(w.qkvB), M, 3*D, D, 0); err != nil {
		return err
	}
	for _, pt := range []vit.HookPoint{vit.HookQ, vit.HookK, vit.HookV} {
		if err := f.patchAt(hook(pt), f.v("qkv")); err != nil {
			return err
		}
	}
	if f.key.taps.Values {
		n := uint64(M * 3 * D * 4)
		p.copy("tap.values", f.v("qkv"), view{b: f.rb, off: f.lay.qkv + uint64(blk)*n}, n)
	}
	var probs *view
	patternPatched := f.patches(vit.HookPattern, blk)
	if f.key.taps.AttnProbs || patternPatched {
		v := f.v("probs")
		probs = &v
	}
	if err := p.attention("attention", f.v("heads"), f.v("qkv"), f.v("cls_pos"), probs, B, N, c.Heads, c.HeadDim(), f.key.edit); err != nil {
		return err
	}
	if patternPatched {
		// The heads again, from the patched pattern (as the CPU forward
		// does when the pattern is hooked).
		if err := f.patchAt(hook(vit.HookPattern), *probs); err != nil {
			return err
		}
		if err := p.patternValues("attention.pattern_values", f.v("heads"), f.v("qkv"), *probs, B, N, c.Heads, c.HeadDim()); err != nil {
			return err
		}
	}
	if err := f.patchAt(hook(vit.HookZ), f.v("heads")); err != nil {
		return err
	}
	if f.key.taps.AttnProbs {
		n := uint64(B * c.Heads * N * N * 4)
		p.copy("tap.attn_probs", *probs, view{b: f.rb, off: f.lay.probs + uint64(blk)*n}, n)
	}
	if err := f.sublayerOut(blk, vit.SiteAttn, "matmul.proj", f.v("heads"), whole(w.projW), optional(w.projB), D, whole(w.norm1W), whole(w.norm1B)); err != nil {
		return err
	}
	if err := f.patchAt(hook(vit.HookResidMid), x); err != nil {
		return err
	}
	if err := f.emit(vit.SiteHSMid, blk, x); err != nil {
		return err
	}

	mlpIn := x
	if !post {
		if err := p.layerNorm("layernorm", h, x, whole(w.norm2W), whole(w.norm2B), M, D, c.LNEps); err != nil {
			return err
		}
		mlpIn = h
	}
	hidden := f.v("hidden")
	if f.key.taps.FC1 || !c.ExactGELU() || f.patches(vit.HookMLPPre, blk) || f.patches(vit.HookMLPPost, blk) {
		// matmul fuses only the exact GELU, and only when fc1 is not tapped
		// or patched.
		if err := p.matmul("matmul.fc1", hidden, mlpIn, whole(w.fc1W), optional(w.fc1B), M, c.MLPDim, D, 0); err != nil {
			return err
		}
		if err := f.patchAt(hook(vit.HookMLPPre), hidden); err != nil {
			return err
		}
		if f.key.taps.FC1 {
			n := uint64(M * c.MLPDim * 4)
			p.copy("tap.fc1", hidden, view{b: f.rb, off: f.lay.fc1 + uint64(blk)*n}, n)
		}
		if err := p.unary("gelu", hidden, M*c.MLPDim, activationMode(c)); err != nil {
			return err
		}
		if err := f.patchAt(hook(vit.HookMLPPost), hidden); err != nil {
			return err
		}
	} else if err := p.matmul("matmul.fc1", hidden, mlpIn, whole(w.fc1W), optional(w.fc1B), M, c.MLPDim, D, matmulGELU); err != nil {
		return err
	}
	if err := f.sublayerOut(blk, vit.SiteMLP, "matmul.fc2", hidden, whole(w.fc2W), optional(w.fc2B), c.MLPDim, whole(w.norm2W), whole(w.norm2B)); err != nil {
		return err
	}
	if err := f.patchAt(hook(vit.HookResidPost), x); err != nil {
		return err
	}
	return f.emit(vit.SiteHS, blk, x)
}

// sublayerOut applies a sublayer's output projection (in → D) and adds the
// result to x, emitting it as site s on the way when anything wants it.
func (f *forwardRecorder) sublayerOut(blk int, s vit.Site, op string, in, wt view, bias *view, k int, normW, normB view) error {
	c := f.b.model.Config
	p := f.p
	M, D := f.key.batch*f.key.n, c.Dim
	x, h, upd := f.v("x"), f.v("h"), f.v("update")
	outHook := vit.HookAttnOut
	if s == vit.SiteMLP {
		outHook = vit.HookMLPOut
	}
	switch {
	case c.PostNorm:
		// h is free in post-norm blocks: their sublayers read x.
		if err := p.matmul(op, upd, in, wt, bias, M, D, k, 0); err != nil {
			return err
		}
		if err := p.layerNorm("layernorm", h, upd, normW, normB, M, D, c.LNEps); err != nil {
			return err
		}
		if err := f.patchAt(vit.Hook{Point: outHook, Block: blk}, h); err != nil {
			return err
		}
		if err := f.emit(s, blk, h); err != nil {
			return err
		}
		return p.add("add", x, h, M*D)
	case f.wanted(s, blk):
		if err := p.matmul(op, upd, in, wt, bias, M, D, k, 0); err != nil {
			return err
		}
		if err := f.patchAt(vit.Hook{Point: outHook, Block: blk}, upd); err != nil {
			return err
		}
		if err := f.emit(s, blk, upd); err != nil {
			return err
		}
		return p.add("add", x, upd, M*D)
	default:
		return p.matmul(op, x, in, wt, bias, M, D, k, matmulAccumulate)
	}
}
