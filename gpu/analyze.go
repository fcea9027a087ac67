package gpu

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cogentcore/webgpu/wgpu"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// Analyze runs the forward pass and the lens on every image: Start, then
// Wait. Images whose token selections have the same length share batches,
// split further only when they would not fit the device's limits or the
// memory budget; consecutive batches are pipelined (see Start).
// req.AfterBlock is not called: a batch runs on the device as a whole, and in
// the browser waiting on it does not block the page.
func (b *Backend) Analyze(images []*vit.Tensor, req lens.Request) ([]*lens.Result, error) {
	p, err := b.Start(images, req)
	if err != nil {
		return nil, err
	}
	return p.Wait()
}

// Start checks the request, cuts it into batches and submits each, returning
// before the last one finishes. Batches are pipelined: while one computes,
// the next one's inputs are converted, staged and encoded, and the previous
// one's readback is mapped and turned into results. One batch is on the
// device at a time; each plan alternates between two readback buffers, so a
// caller that starts call i+1 before it waits on call i keeps the device busy.
func (b *Backend) Start(images []*vit.Tensor, req lens.Request) (lens.Pending, error) {
	c := b.model.Config
	if err := req.Validate(c, len(images)); err != nil {
		return nil, err
	}
	if req.TopK > maxLensTopK {
		return nil, fmt.Errorf("gpu: top-k %d over the GPU lens kernel's maximum of %d (use the CPU backend)", req.TopK, maxLensTopK)
	}
	if err := c.CheckEdit(req.Edit); err != nil {
		return nil, err
	}
	tokens := make([][]int, len(images))
	for i, img := range images {
		if err := c.CheckInput(img); err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		var keep []int
		if req.Keep != nil {
			keep = req.Keep[i]
		}
		t, err := c.KeptTokens(keep)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		tokens[i] = t
	}
	if err := b.d.check(); err != nil {
		return nil, err
	}

	// Group by sequence length (first appearance order), then cut batches.
	var lengths []int
	groups := map[int][]int{}
	for i, t := range tokens {
		if _, ok := groups[len(t)]; !ok {
			lengths = append(lengths, len(t))
		}
		groups[len(t)] = append(groups[len(t)], i)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ks == nil {
		return nil, errors.New("gpu: the backend is closed")
	}
	if err := b.useTranslators(req.Lens); err != nil {
		return nil, err
	}
	call := &pendingCall{b: b, n: len(images)}
	for _, n := range lengths {
		idx := groups[n]
		for len(idx) > 0 {
			key := requestKey(req, n)
			size, err := b.batchSize(key, req.Sites, len(idx))
			if err == nil {
				key.batch = size
				var run *batchRun
				if run, err = b.startBatch(key, req, images, tokens, idx[:size], nil); err == nil {
					call.runs = append(call.runs, run)
				}
			}
			if err != nil {
				for _, r := range call.runs { // frees their staging; results dropped
					b.collect(r)
				}
				return nil, err
			}
			idx = idx[size:]
		}
	}
	return call, nil
}

// pendingCall is a started Start: its batches, in submission order.
type pendingCall struct {
	b      *Backend
	n      int
	runs   []*batchRun
	waited bool
}

// Wait collects every batch of the call and returns its results in image order.
func (c *pendingCall) Wait() ([]*lens.Result, error) {
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.waited {
		return nil, errors.New("gpu: results of a call collected twice")
	}
	c.waited = true
	out := make([]*lens.Result, c.n)
	var err error
	for _, r := range c.runs {
		b.collect(r)
		if r.err != nil {
			err = cmp.Or(err, r.err)
			continue
		}
		for bi, i := range r.idx {
			out[i] = r.results[bi]
		}
		r.results = nil
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// batchRun is one submitted batch until its results are collected.
type batchRun struct {
	pl        *plan
	slot      int // which of pl.readbacks receives its results
	req       lens.Request
	idx       []int   // image indices of the call
	tokens    [][]int // their kept tokens
	staging   *buf    // its inputs, freed once it finished
	collected bool
	results   []*lens.Result
	err       error
}

// requestKey is the plan key of req for sequences of n tokens (batch unset).
func requestKey(req lens.Request, n int) planKey {
	return planKey{n: n, sites: sitesKey(req.Sites), k: req.TopK, edit: req.Edit, taps: req.Taps, lens: req.Lens}
}

// batchSize is the largest batch up to want (and MaxBatch) whose buffers fit.
func (b *Backend) batchSize(key planKey, sites []vit.Site, want int) (int, error) {
	c := b.model.Config
	budget := uint64(b.opt.MemoryBudget)
	hi := min(want, b.opt.MaxBatch)
	key.batch = 1
	if err := planSizes(c, key, sites, unitWidth(b.model)).fits(b.d.limits, budget); err != nil {
		return 0, fmt.Errorf("gpu: even one image does not fit: %w (ask for fewer taps or sites, or raise Options.MemoryBudget)", err)
	}
	lo := 1
	for lo < hi { // largest fitting size in [lo, hi]
		mid := (lo + hi + 1) / 2
		key.batch = mid
		if planSizes(c, key, sites, unitWidth(b.model)).fits(b.d.limits, budget) == nil {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, nil
}

// planFor returns the cached plan of key or builds one, evicting the least
// recently used beyond plansKept.
func (b *Backend) planFor(key planKey, sites []vit.Site) (*plan, error) {
	for i, p := range b.plans {
		if p.key == key {
			copy(b.plans[1:i+1], b.plans[:i])
			b.plans[0] = p
			return p, nil
		}
	}
	p, err := b.buildPlan(key, sites)
	if err != nil {
		return nil, err
	}
	b.plans = append([]*plan{p}, b.plans...)
	// Keep a second plan (a last partial batch, another token count) only
	// while both fit the memory budget together.
	held := uint64(0)
	for i, q := range b.plans {
		held += q.prog.bytes
		if i > 0 && (i >= plansKept || held > uint64(b.opt.MemoryBudget)) {
			for _, old := range b.plans[i:] {
				b.collectPlan(old)
				old.release()
			}
			b.plans = b.plans[:i]
			break
		}
	}
	return p, nil
}

// startBatch converts and stages one batch's inputs, encodes its plan's
// commands with the readback retargeted to a free slot, waits for the batch
// before it to finish, and submits. The previous batch has finished when
// this one is submitted, so its readback can be mapped at once while this
// one computes (see mapRead for why nothing is mapped earlier). A patching
// plan's replacements and sites come in patch (nil otherwise).
func (b *Backend) startBatch(key planKey, req lens.Request, images []*vit.Tensor, tokens [][]int, idx []int, patch *patchInputs) (*batchRun, error) {
	c := b.model.Config
	pl, err := b.planFor(key, req.Sites)
	if err != nil {
		return nil, err
	}
	B, N := key.batch, key.n
	// One upload buffer holds pixels, token indices, [CLS] positions and
	// targets; copies move them into the plan's buffers.
	px := c.Channels * c.ImageSize * c.ImageSize
	data := make([]byte, 0, 4*(B*px+B*N+2*B))
	run := &batchRun{pl: pl, req: req, idx: idx}
	for _, i := range idx {
		for _, v := range images[i].Data {
			data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
		}
		run.tokens = append(run.tokens, tokens[i])
	}
	offKeep := len(data)
	for _, i := range idx {
		for _, t := range tokens[i] {
			data = binary.LittleEndian.AppendUint32(data, uint32(t))
		}
	}
	offCls := len(data)
	for _, i := range idx {
		pos := -1
		if c.ClassToken {
			pos = slices.Index(tokens[i], 0)
		}
		data = binary.LittleEndian.AppendUint32(data, uint32(int32(pos)))
	}
	offTargets := len(data)
	for _, i := range idx {
		t := -1
		if req.Targets != nil {
			t = req.Targets[i]
		}
		data = binary.LittleEndian.AppendUint32(data, uint32(int32(t)))
	}
	offSel := len(data)
	if patch != nil {
		data = append(data, patch.selBytes(idx)...)
	}
	up, err := upload(b.d, "inputs", data, wgpu.BufferUsageCopySrc)
	if err != nil {
		return nil, err
	}
	pre := func(enc *wgpu.CommandEncoder) error {
		for _, cp := range []struct {
			dst      *buf
			off, end int
		}{{pl.pixels, 0, offKeep}, {pl.keep, offKeep, offCls}, {pl.clsPos, offCls, offTargets}, {pl.targets, offTargets, offSel}} {
			if err := enc.CopyBufferToBuffer(up.b, uint64(cp.off), cp.dst.b, 0, uint64(cp.end-cp.off)); err != nil {
				return fmt.Errorf("gpu: uploading inputs: %w", err)
			}
		}
		if patch == nil {
			return nil
		}
		if err := enc.CopyBufferToBuffer(up.b, uint64(offSel), pl.patchSel.b, 0, uint64(len(data)-offSel)); err != nil {
			return fmt.Errorf("gpu: uploading the patches: %w", err)
		}
		if err := enc.CopyBufferToBuffer(patch.src.b, 0, pl.patchSrc.b, 0, patch.src.size); err != nil {
			return fmt.Errorf("gpu: uploading the replacements: %w", err)
		}
		return nil
	}
	run.slot = pl.nextSlot
	pl.nextSlot = 1 - pl.nextSlot
	if prev := pl.slots[run.slot]; prev != nil {
		b.collect(prev) // its results move to its call; the buffer is free
	}
	cmd, err := pl.prog.commands(pre, nil, nil, retarget{from: pl.readbacks[0], to: pl.readbacks[run.slot]})
	if err != nil {
		freeBuf(up)
		return nil, err
	}
	defer cmd.Release()
	b.settle()
	b.d.queue.Submit(cmd)
	run.staging = up
	pl.slots[run.slot] = run
	b.onDevice = run
	return run, nil
}

// settle waits until the batch on the device (if any) has finished.
func (b *Backend) settle() {
	if b.onDevice != nil {
		b.d.wait()
		b.onDevice = nil
	}
}

// collect reads a batch's results once it finished (waiting for it if it is
// the one on the device), frees its inputs and its readback slot, and keeps
// the results (or the error) in the run for its call's Wait.
func (b *Backend) collect(r *batchRun) {
	if r.collected {
		return
	}
	r.collected = true
	if b.onDevice == r {
		b.settle()
	}
	pl := r.pl
	if pl.slots[r.slot] == r {
		pl.slots[r.slot] = nil
	}
	freeBuf(r.staging)
	r.staging = nil
	raw, err := b.d.mapRead(pl.readbacks[r.slot].b, pl.rb.size)
	if err != nil {
		r.err = err
		return
	}
	r.results = make([]*lens.Result, len(r.idx))
	for bi := range r.idx {
		r.results[bi] = b.result(pl, raw, bi, r.tokens[bi], r.req)
	}
}

// collectPlan collects the batches still holding a plan's readbacks, before
// the plan is released.
func (b *Backend) collectPlan(pl *plan) {
	for _, r := range pl.slots {
		if r != nil {
			b.collect(r)
		}
	}
}

func freeBuf(x *buf) {
	if x != nil {
		x.b.Destroy()
		x.b.Release()
	}
}

func words(raw []byte, off uint64, n int) []uint32 {
	w := make([]uint32, n)
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(raw[off+4*uint64(i):])
	}
	return w
}

func floats(raw []byte, off uint64, n int) []float32 {
	f := make([]float32, n)
	for i := range f {
		f[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[off+4*uint64(i):]))
	}
	return f
}

// result assembles image bi of a batch from the readback bytes.
func (b *Backend) result(pl *plan, raw []byte, bi int, tokens []int, req lens.Request) *lens.Result {
	c := b.model.Config
	B, N, K := pl.key.batch, pl.key.n, pl.key.k
	M, D, C := B*N, c.Dim, c.Classes
	lay := pl.rb
	f32 := uint64(4)
	tr := &vit.Trace{
		Tokens: slices.Clone(tokens),
		Logits: floats(raw, lay.logits+uint64(bi*C)*f32, C),
		Pooled: floats(raw, lay.pooled+uint64(bi*D)*f32, D),
	}
	target := int(int32(words(raw, lay.targets+uint64(bi)*f32, 1)[0]))
	S := len(req.Sites)
	readouts := make([]lens.Readout, S*c.Depth)
	for si, s := range req.Sites {
		for blk := 0; blk < c.Depth; blk++ {
			row0 := ((blk*S+si)*B + bi) * N
			stride := lensRowWords(K)
			w := words(raw, lay.readouts+uint64(row0*stride)*f32, N*stride)
			r := lens.Readout{Site: s, Block: blk, K: K, Rank: make([]int32, N), TargetLogit: make([]float32, N), Top: make([]int32, N*K),
				Entropy: make([]float32, N), KL: make([]float32, N)}
			for t := 0; t < N; t++ {
				row := w[t*stride:]
				r.Rank[t] = int32(row[0])
				r.TargetLogit[t] = math.Float32frombits(row[1])
				r.Entropy[t] = math.Float32frombits(row[2])
				r.KL[t] = math.Float32frombits(row[3])
				for j := 0; j < K; j++ {
					r.Top[t*K+j] = int32(row[lensOutHead+j])
				}
			}
			readouts[si*c.Depth+blk] = r
		}
	}
	taps := pl.key.taps
	rowsOf := func(off uint64, blk, perBlock, n, width int) *vit.Tensor {
		start := off + uint64(blk*perBlock+bi*n*width)*f32
		return &vit.Tensor{Shape: []int{n, width}, Data: floats(raw, start, n*width)}
	}
	if taps.Embed {
		tr.Embed = rowsOf(lay.embed, 0, 0, N, D)
	}
	for s := range vit.NumSites {
		if taps.Sites[s] {
			tr.Sites[s] = make([]*vit.Tensor, c.Depth)
			for blk := range tr.Sites[s] {
				tr.Sites[s][blk] = rowsOf(lay.sites[s], blk, M*D, N, D)
			}
		}
	}
	if taps.FC1 {
		tr.FC1 = make([]*vit.Tensor, c.Depth)
		for blk := range tr.FC1 {
			tr.FC1[blk] = rowsOf(lay.fc1, blk, M*c.MLPDim, N, c.MLPDim)
		}
	}
	H, dh := c.Heads, c.HeadDim()
	if taps.AttnProbs {
		tr.AttnProbs = make([]*vit.Tensor, c.Depth)
		for blk := range tr.AttnProbs {
			start := lay.probs + uint64(blk*B*H*N*N+bi*H*N*N)*f32
			tr.AttnProbs[blk] = &vit.Tensor{Shape: []int{H, N, N}, Data: floats(raw, start, H*N*N)}
		}
	}
	if taps.Values {
		tr.Values = make([]*vit.Tensor, c.Depth)
		for blk := range tr.Values {
			qkv := rowsOf(lay.qkv, blk, M*3*D, N, 3*D).Data
			v := vit.NewTensor(H, N, dh)
			for h := 0; h < H; h++ {
				for s := 0; s < N; s++ {
					copy(v.Data[(h*N+s)*dh:(h*N+s+1)*dh], qkv[s*3*D+2*D+h*dh:])
				}
			}
			tr.Values[blk] = v
		}
	}
	return &lens.Result{Target: target, Tokens: tr.Tokens, Logits: tr.Logits, Readouts: readouts, Trace: tr}
}
