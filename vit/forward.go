package vit

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// Forward runs the model on one preprocessed image (Channels×ImageSize×ImageSize)
// and returns the logits and whatever opt.Taps asked for; opt.Record, when
// set, receives what a backward pass needs.
func (m *Model) Forward(pixels *Tensor, opt Options) (*Trace, error) {
	c := m.Config
	if err := c.CheckInput(pixels); err != nil {
		return nil, err
	}
	tokens, err := c.KeptTokens(opt.Keep)
	if err != nil {
		return nil, err
	}
	if err := c.CheckEdit(opt.Edit); err != nil {
		return nil, err
	}
	var embedded *[]float32 // where hook_embed's value goes, when recording
	if opt.Record != nil {
		*opt.Record = Activations{Tokens: tokens, Blocks: make([]BlockActivations, c.Depth)}
		embedded = &opt.Record.Embed
	}
	x := m.embed(pixels, opt.Hooks, embedded)
	if opt.Keep != nil {
		x = keepRows(x, tokens, c.Dim)
	}
	tr := &Trace{Tokens: tokens}
	for s := range NumSites {
		if opt.Taps.Sites[s] {
			tr.Sites[s] = make([]*Tensor, c.Depth)
		}
	}
	if opt.Taps.AttnProbs {
		tr.AttnProbs = make([]*Tensor, c.Depth)
	}
	if opt.Taps.Values {
		tr.Values = make([]*Tensor, c.Depth)
	}
	if opt.Taps.FC1 {
		tr.FC1 = make([]*Tensor, c.Depth)
	}
	if opt.Taps.Heads {
		tr.Heads = make([]*Tensor, c.Depth)
	}
	// The blocks' work buffers go from block to block (and forward to
	// forward) unless a backward pass or a hook might keep them.
	var buf *blockBuffers
	if opt.Record == nil && len(opt.Hooks) == 0 {
		buf = blockBufferPool.Get().(*blockBuffers)
		defer blockBufferPool.Put(buf)
	}
	for b := range m.Blocks {
		var rec *BlockActivations
		if opt.Record != nil {
			rec = &opt.Record.Blocks[b]
		}
		opt.Hooks.call(Hook{Point: HookResidPre, Block: b}, x, []int{len(tokens), c.Dim})
		if b == 0 && opt.Taps.Embed {
			var old *Tensor
			if opt.Reuse != nil {
				old = opt.Reuse.Embed
			}
			tr.Embed = keepTap(old, x, len(tokens), c.Dim)
		}
		m.block(b, x, tokens, opt, tr, rec, buf)
		if opt.AfterBlock != nil {
			if err := opt.AfterBlock(b); err != nil {
				return nil, err
			}
		}
	}
	tr.Pooled, tr.Logits = m.classify(x, len(tokens), opt.Record)
	return tr, nil
}

// Embed turns pixels into the block-0 input: patch embedding, the prefix
// tokens ([CLS], distillation token, registers), position embeddings and,
// when the config says so, norm_pre (NumTokens×Dim).
func (m *Model) Embed(pixels *Tensor) []float32 { return m.embed(pixels, nil, nil) }

// embed is Embed with the hooks hook_embed (before the position embedding)
// and hook_pos_embed; keep, when set, receives a copy of hook_embed's value.
func (m *Model) embed(pixels *Tensor, hooks HookFuncs, keep *[]float32) []float32 {
	c := m.Config
	g, p, d := c.GridSize(), c.PatchSize, c.Dim
	patchLen := c.Channels * p * p
	// im2col: one row per patch in (c, y, x) order, matching the conv weight.
	cols := make([]float32, c.NumPatches()*patchLen)
	for gy := 0; gy < g; gy++ {
		for gx := 0; gx < g; gx++ {
			row := cols[(gy*g+gx)*patchLen:]
			i := 0
			for ch := 0; ch < c.Channels; ch++ {
				for y := 0; y < p; y++ {
					src := pixels.Data[(ch*c.ImageSize+gy*p+y)*c.ImageSize+gx*p:]
					copy(row[i:i+p], src[:p])
					i += p
				}
			}
		}
	}
	x := make([]float32, c.NumTokens()*d)
	first := c.FirstImageToken()
	m.LinearForward(x[first*d:], cols, c.NumPatches(), m.Patch)
	// The prefix tokens in timm's order: [CLS], distillation token, registers.
	off := 0
	for _, tok := range [][]float32{m.ClsToken, m.DistToken, m.RegTokens} {
		off += copy(x[off:], tok)
	}
	shape := []int{c.NumTokens(), d}
	hooks.call(Hook{Point: HookEmbed}, x, shape)
	if keep != nil {
		*keep = slices.Clone(x)
	}
	pos := m.PosEmbed
	if hooks.has(HookPosEmbed, 0) {
		pos = slices.Clone(pos)
		hooks.call(Hook{Point: HookPosEmbed}, pos, shape)
	}
	Add(x, pos)
	if c.NormPre {
		LayerNorm(x, x, c.NumTokens(), d, m.NormPre, c.LNEps)
	}
	return x
}

// keepRows drops every sequence position not in tokens (after position
// embeddings, before block 0), preserving the order of tokens, which
// Config.KeptTokens has checked.
func keepRows(x []float32, tokens []int, d int) []float32 {
	out := make([]float32, 0, len(tokens)*d)
	for _, t := range tokens {
		out = append(out, x[t*d:(t+1)*d]...)
	}
	return out
}

// blockBuffers are one forward's per-block work buffers: the normed input,
// qkv, the attention heads, the MLP's hidden layer and a sublayer's update.
// Every op writes its buffer whole, so none is cleared between blocks.
type blockBuffers struct{ normed, qkv, heads, hidden, update []float32 }

var blockBufferPool = sync.Pool{New: func() any { return new(blockBuffers) }}

// take returns *p resized to size, reallocated when too small.
func take(p *[]float32, size int) []float32 {
	if cap(*p) < size {
		*p = make([]float32, size)
	}
	return (*p)[:size]
}

// block runs block b in place on x (n×D), recording taps into tr and, when
// rec is set, the activations a backward pass needs. buf, when not nil,
// lends the work buffers (nothing may keep them past the block); without it
// the block allocates its own, which rec may keep.
func (m *Model) block(b int, x []float32, tokens []int, opt Options, tr *Trace, rec *BlockActivations, buf *blockBuffers) {
	c := m.Config
	blk := &m.Blocks[b]
	n, d := len(tokens), c.Dim
	tap := func(s Site, v []float32) {
		if tr.Sites[s] != nil {
			tr.Sites[s][b] = keepTap(opt.Reuse.reusable(s, b), v, n, d)
		}
	}
	// record copies a value that is overwritten later, when recording.
	record := func(v []float32) []float32 {
		if rec == nil {
			return nil
		}
		return slices.Clone(v)
	}
	// A sublayer reads LN(x) in a pre-norm block and x itself in a post-norm
	// one, and adds its update (LN(update) in a post-norm block) to x.
	if buf == nil {
		buf = new(blockBuffers)
	}
	h := take(&buf.normed, n*d)
	input := func(norm Norm) []float32 {
		if c.PostNorm {
			return x
		}
		LayerNorm(h, x, n, d, norm, c.LNEps)
		return h
	}
	hook := func(p HookPoint, v []float32, shape ...int) {
		opt.Hooks.call(Hook{Point: p, Block: b}, v, shape)
	}
	residual := func(update []float32, norm Norm, site, stream Site, out, after HookPoint) {
		if c.PostNorm {
			LayerNorm(update, update, n, d, norm, c.LNEps)
		}
		hook(out, update, n, d)
		tap(site, update)
		Add(x, update)
		hook(after, x, n, d)
		tap(stream, x)
	}
	// A pre-norm sublayer whose output nothing taps, hooks or records is
	// added to the stream in the GEMM (no update buffer, no separate pass).
	fusedResidual := func(site Site, out HookPoint) bool {
		return !c.PostNorm && rec == nil && tr.Sites[site] == nil && !opt.Hooks.has(out, b)
	}
	in := record(x)
	// Attention sublayer.
	qkv := take(&buf.qkv, n*3*d)
	m.LinearForward(qkv, input(blk.Norm1), n, blk.QKV)
	for i, p := range []HookPoint{HookQ, HookK, HookV} {
		if opt.Hooks.has(p, b) {
			hookQKV(qkv, i, n, c.Heads, c.HeadDim(), func(v []float32) { hook(p, v, n, c.Heads, c.HeadDim()) })
		}
	}
	heads := take(&buf.heads, n*d)
	patternHooked := opt.Hooks.has(HookPattern, b)
	probs, values := Attention(heads, qkv, n, c.Heads, c.HeadDim(), opt.Edit, tokens, opt.Taps.AttnProbs || rec != nil || patternHooked, opt.Taps.Values)
	if patternHooked {
		hook(HookPattern, probs.Data, c.Heads, n, n)
		HeadsFromPattern(heads, qkv, probs, n, c.Heads, c.HeadDim())
	}
	hook(HookZ, heads, n, c.Heads, c.HeadDim())
	if tr.AttnProbs != nil {
		tr.AttnProbs[b] = probs
	}
	if tr.Values != nil {
		tr.Values[b] = values
	}
	if tr.Heads != nil {
		// Recording keeps heads itself (a buffer of this block's own), which
		// nothing writes after this: the tap shares it.
		kept := heads
		if rec == nil {
			kept = slices.Clone(heads)
		}
		tr.Heads[b] = &Tensor{Shape: []int{n, d}, Data: kept}
	}
	var update, attnOut []float32
	if fusedResidual(SiteAttn, HookAttnOut) {
		m.linearAdd(x, heads, n, blk.Proj)
		hook(HookResidMid, x, n, d)
		tap(SiteHSMid, x)
	} else {
		update = take(&buf.update, n*d)
		m.LinearForward(update, heads, n, blk.Proj)
		attnOut = record(update)
		residual(update, blk.Norm1, SiteAttn, SiteHSMid, HookAttnOut, HookResidMid)
	}
	mid := record(x)
	// MLP sublayer.
	hidden := take(&buf.hidden, n*c.MLPDim)
	var fc1 []float32
	// The GEMM fuses exact GELU only; other activations run after it.
	if tr.FC1 != nil || rec != nil || !c.ExactGELU() || opt.Hooks.has(HookMLPPre, b) || opt.Hooks.has(HookMLPPost, b) {
		m.LinearForward(hidden, input(blk.Norm2), n, blk.FC1)
		hook(HookMLPPre, hidden, n, c.MLPDim)
		fc1 = record(hidden)
		if tr.FC1 != nil {
			// The tap and the recording hold the same pre-activations,
			// which neither writes: one copy (B/16: 2.4 MB a block).
			kept := fc1
			if kept == nil {
				kept = slices.Clone(hidden)
			}
			tr.FC1[b] = &Tensor{Shape: []int{n, c.MLPDim}, Data: kept}
		}
		c.Activate(hidden)
		hook(HookMLPPost, hidden, n, c.MLPDim)
	} else {
		m.linear(hidden, input(blk.Norm2), n, blk.FC1, true) // GELU in the GEMM's epilogue
	}
	var mlpOut []float32
	if fusedResidual(SiteMLP, HookMLPOut) {
		m.linearAdd(x, hidden, n, blk.FC2)
		hook(HookResidPost, x, n, d)
		tap(SiteHS, x)
	} else {
		if update == nil {
			update = take(&buf.update, n*d)
		}
		m.LinearForward(update, hidden, n, blk.FC2)
		mlpOut = record(update)
		residual(update, blk.Norm2, SiteMLP, SiteHS, HookMLPOut, HookResidPost)
	}
	if rec != nil {
		*rec = BlockActivations{In: in, QKV: qkv, Probs: probs, Heads: heads, AttnOut: attnOut, Mid: mid, FC1: fc1, MLPOut: mlpOut}
	}
}

// Attention is multi-head self-attention up to (not including) the output
// projection: for each head, softmax(q·kᵀ/√dh), optionally edited, times v;
// heads are concatenated into out (n×H·dh). qkv is n×3D with q, k, v blocks.
// tokens gives each position's original index, so edits find [CLS] (token 0)
// even after tokens were dropped. It returns the probabilities and values
// when asked for.
func Attention(out, qkv []float32, n, heads, dh int, edit AttnEdit, tokens []int, keepProbs, keepValues bool) (probs, values *Tensor) {
	d := heads * dh
	if keepProbs {
		probs = NewTensor(heads, n, n)
	}
	if keepValues {
		values = NewTensor(heads, n, dh)
	}
	scale := float32(1 / math.Sqrt(float64(dh)))
	cls := slices.Index(tokens, 0) // -1 when [CLS] was dropped or never existed
	if edit == EditNone && attentionHeadsKernel != nil {
		var pd []float32
		if probs != nil {
			pd = probs.Data
		}
		if left, ran := attentionHeadsKernel(out, qkv, n, heads, dh, scale, pd); ran {
			a := attentionScratches.Get().(*attentionScratch)
			defer attentionScratches.Put(a)
			for h := range heads {
				if left[h] {
					a.head(out, qkv, n, d, dh, h, scale, edit, cls, probs)
				}
				headValues(values, qkv, n, d, dh, h)
			}
			return probs, values
		}
	}
	// Heads run in parallel; each keeps its n×n scores in cache from the
	// q·kᵀ product through the softmax to the product with v.
	workers := min(gemmWorkers(), heads, max(1, 2*heads*n*n*dh/parallelMinWork))
	var next atomic.Int64
	var wg sync.WaitGroup
	work := func() {
		a := attentionScratches.Get().(*attentionScratch)
		defer attentionScratches.Put(a)
		for h := int(next.Add(1)) - 1; h < heads; h = int(next.Add(1)) - 1 {
			a.head(out, qkv, n, d, dh, h, scale, edit, cls, probs)
			headValues(values, qkv, n, d, dh, h)
		}
	}
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() { defer wg.Done(); work() }()
	}
	work()
	wg.Wait()
	return probs, values
}

// headValues copies head h's values out of qkv into values (H×n×dh), when
// kept.
func headValues(values *Tensor, qkv []float32, n, d, dh, h int) {
	if values == nil {
		return
	}
	vo := 2*d + h*dh
	for s := 0; s < n; s++ {
		copy(values.Data[(h*n+s)*dh:], qkv[s*3*d+vo:s*3*d+vo+dh])
	}
}

// attentionHeadsKernel, where a platform has one (heads_js.go: the
// browser's threaded module), runs every head of an unedited Attention
// with head's arithmetic on threads Go does not have, writing out and probs
// (when not nil); it returns the heads it left to head, or ran false where
// it did not run.
var attentionHeadsKernel func(out, qkv []float32, n, heads, dh int, scale float32, probs []float32) (left []bool, ran bool)

// attentionScratch is one worker's buffers for Attention's heads, recycled
// across calls (a B/16 forward would otherwise allocate them 12 times).
type attentionScratch struct {
	scores       []float32
	keys, values packedB
}

var attentionScratches = sync.Pool{New: func() any { return new(attentionScratch) }}

// head computes head h of Attention into its columns of out.
func (a *attentionScratch) head(out, qkv []float32, n, d, dh, h int, scale float32, edit AttnEdit, cls int, probs *Tensor) {
	// The scores' rows are padded to whole 8-float vectors for the vector
	// softmax; only the first n columns are ever read.
	np := (n + 7) &^ 7
	if len(a.scores) < n*np {
		a.scores = make([]float32, n*np)
	}
	scores := a.scores[:n*np]
	qo, ko, vo := h*dh, d+h*dh, 2*d+h*dh
	if activeKernel != nil {
		productOf(scores, np, qkv[qo:], 3*d, n, columnsB(qkv[ko:], 3*d, n, dh), &a.keys, 1)
	} else {
		for t := 0; t < n; t++ {
			q := qkv[t*3*d+qo : t*3*d+qo+dh]
			for s := 0; s < n; s++ {
				scores[t*np+s] = dot(q, qkv[s*3*d+ko:s*3*d+ko+dh])
			}
		}
	}
	for t := 0; t < n; t++ {
		row := scores[t*np : t*np+n]
		if !softmaxVector(scores[t*np:(t+1)*np], n, scale) {
			for s := range row {
				row[s] *= scale
			}
			Softmax(row)
		}
		if t != cls {
			editRow(row, edit, t, cls)
		}
		if probs != nil {
			copy(probs.Data[(h*n+t)*n:], row)
		}
	}
	if activeKernel != nil {
		productOf(out[qo:], d, scores, np, n, rowsB(qkv[vo:], 3*d, n, dh), &a.values, 1)
		return
	}
	for t := 0; t < n; t++ {
		o := out[t*d+qo : t*d+qo+dh]
		clear(o)
		for s, p := range scores[t*np : t*np+n] {
			if p == 0 {
				continue
			}
			v := qkv[s*3*d+vo : s*3*d+vo+dh]
			for i := range o {
				o[i] += p * v[i]
			}
		}
	}
}

// hookQKV gathers block i (0 q, 1 k, 2 v) of the fused n×3D qkv into an
// n×H×dh tensor, hands it to f and scatters it back, so a hook can read and
// replace the queries, keys or values.
// QKVPart copies part i (0 the queries, 1 the keys, 2 the values) of a
// block's qkv (n×3D: a token's q, k and v side by side), or of its
// gradient, into n×D rows of its own: the layout of hook_q, hook_k, hook_v.
func QKVPart(qkv []float32, i, n, d int) []float32 {
	out := make([]float32, n*d)
	for t := 0; t < n; t++ {
		copy(out[t*d:(t+1)*d], qkv[t*3*d+i*d:])
	}
	return out
}

func hookQKV(qkv []float32, i, n, heads, dh int, f func([]float32)) {
	d := heads * dh
	v := QKVPart(qkv, i, n, d)
	f(v)
	for t := 0; t < n; t++ {
		copy(qkv[t*3*d+i*d:t*3*d+(i+1)*d], v[t*d:])
	}
}

// HeadsFromPattern recomputes the concatenated head outputs from given
// attention probabilities (H×n×n) and the values in qkv: out[t, h] =
// Σ_s A_h[t, s]·v_s. It is how a replaced pattern reaches the rest of the
// forward; a plain loop in float64, the slow twin of Attention's product.
func HeadsFromPattern(out, qkv []float32, probs *Tensor, n, heads, dh int) {
	d := heads * dh
	acc := make([]float64, dh)
	for h := 0; h < heads; h++ {
		vo := 2*d + h*dh
		for t := 0; t < n; t++ {
			clear(acc)
			for s, p := range probs.Data[(h*n+t)*n : (h*n+t+1)*n] {
				v := qkv[s*3*d+vo : s*3*d+vo+dh]
				for i := range acc {
					acc[i] += float64(p) * float64(v[i])
				}
			}
			for i, a := range acc {
				out[t*d+h*dh+i] = float32(a)
			}
		}
	}
}

// editRow applies an attention edit to the probabilities of query position t
// (never the [CLS] row). cls is [CLS]'s position or -1.
func editRow(row []float32, edit AttnEdit, t, cls int) {
	switch edit {
	case EditSelfOnly:
		clear(row)
		row[t] = 1
	case EditNoCLS:
		if cls >= 0 {
			row[cls] = 0
		}
	}
}

// distilledLogits is distilled DeiT's eval output, the mean of head on the
// normed [CLS] and head_dist on the normed distillation token (position 1,
// which KeptTokens keeps).
func distilledLogits(logits, normedCLS, dist []float32, m *Model) {
	c := m.Config
	normed := make([]float32, c.Dim)
	LayerNorm(normed, dist, 1, c.Dim, m.Norm, c.LNEps)
	m.LinearForward(logits, normedCLS, 1, m.HeadCLS)
	other := make([]float32, c.Classes)
	m.LinearForward(other, normed, 1, m.HeadDist)
	for i := range logits {
		logits[i] = (logits[i] + other[i]) / 2
	}
}

// classify pools the last hidden state, applies the final norm and the head,
// recording the pooled vector and the logits when rec is set.
func (m *Model) classify(x []float32, n int, rec *Activations) (pooled, logits []float32) {
	c := m.Config
	d := c.Dim
	pooled = make([]float32, d)
	switch c.Pool {
	case PoolCLS:
		copy(pooled, x[:d]) // KeptTokens guarantees position 0 is [CLS]
	case PoolMean:
		for t := 0; t < n; t++ {
			Add(pooled, x[t*d:(t+1)*d])
		}
		for i := range pooled {
			pooled[i] /= float32(n)
		}
	}
	if rec != nil {
		rec.Pooled = slices.Clone(pooled)
		if c.DistToken {
			rec.PooledDist = slices.Clone(x[d : 2*d])
		}
	}
	LayerNorm(pooled, pooled, 1, d, m.Norm, c.LNEps)
	logits = make([]float32, c.Classes)
	if c.DistToken {
		distilledLogits(logits, pooled, x[d:2*d], m)
	} else {
		m.LinearForward(logits, pooled, 1, m.Head)
		m.NormalizeLogits(logits, pooled, 1)
	}
	if rec != nil {
		rec.Logits = logits
	}
	return pooled, logits
}
