package gpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cogentcore/webgpu/wgpu"

	"vitlens/vit"
	"vitlens/vit/lens"
	"vitlens/vit/patching"
)

// Activation patching on the GPU: a batch is the corrupted image repeated,
// each copy with its own site patched (patch.wgsl after the op that makes the
// hooked activation, in every plan that patches), so one submission runs as
// many patches as fit. The replacements (the clean image's activations, zeros,
// means) are given by the caller, as to patching.CPU, its reference.

// patchHookNames says which hooks the GPU forward patches, for errors.
const patchHookNames = "hook_resid_pre, attn.hook_q, attn.hook_k, attn.hook_v, attn.hook_pattern, attn.hook_z, hook_attn_out, hook_resid_mid, mlp.hook_pre, mlp.hook_post, hook_mlp_out and hook_resid_post"

// patchLayoutOf places hook h's activation in the plan's buffers for
// sequences of n tokens; ok is false for the hooks the GPU forward cannot
// patch (hook_embed and hook_pos_embed: the embed kernel fuses the patch
// embedding, prefix tokens and positions).
func patchLayoutOf(c vit.Config, h vit.Hook, n int) (l patchLayout, ok bool) {
	D, dh := c.Dim, c.HeadDim()
	rowsOf := func(width, stride, off, headDim int) patchLayout {
		return patchLayout{rows: n, width: width, rowStride: stride, colOff: off, headDim: headDim}
	}
	switch h.Point {
	case vit.HookResidPre, vit.HookAttnOut, vit.HookResidMid, vit.HookMLPOut, vit.HookResidPost:
		return rowsOf(D, D, 0, D), true
	case vit.HookQ, vit.HookK, vit.HookV:
		return rowsOf(D, 3*D, int(h.Point-vit.HookQ)*D, dh), true
	case vit.HookZ:
		return rowsOf(D, D, 0, dh), true
	case vit.HookMLPPre, vit.HookMLPPost:
		return rowsOf(c.MLPDim, c.MLPDim, 0, c.MLPDim), true
	case vit.HookPattern:
		return patchLayout{rows: c.Heads * n, width: n, rowStride: n, n: n, headMajor: true}, true
	}
	return patchLayout{}, false
}

// patchSpec is what a plan patches: its hooks (numbered as in the batch's
// selection rows) and where each one's replacement starts in patch_src.
type patchSpec struct {
	hooks  []vit.Hook
	srcOff []int
	words  int // patch_src's length
	n      int
}

// patchKey names a set of hooks in a plan key: their names, comma-joined in
// forward order, which parsePatchSpec reads back.
func patchKey(hooks []vit.Hook) string {
	names := make([]string, len(hooks))
	for i, h := range hooks {
		names[i] = h.Name()
	}
	return strings.Join(names, ",")
}

// parsePatchSpec reads a plan key's patch field (nil when it patches nothing).
func parsePatchSpec(c vit.Config, key string, n int) (*patchSpec, error) {
	if key == "" {
		return nil, nil
	}
	hooks, err := c.MatchHooks(key)
	if err != nil {
		return nil, err
	}
	s := &patchSpec{hooks: hooks, n: n}
	for _, h := range hooks {
		l, ok := patchLayoutOf(c, h, n)
		if !ok {
			return nil, fmt.Errorf("gpu: patching at %s is not supported on the GPU backend (it patches %s)", h.Name(), patchHookNames)
		}
		s.srcOff = append(s.srcOff, s.words)
		s.words += l.rows * l.width
	}
	return s, nil
}

// id is hook h's number in the selection rows, -1 when not patched.
func (s *patchSpec) id(h vit.Hook) int {
	if s == nil {
		return -1
	}
	return slices.Index(s.hooks, h)
}

// hasPoint says whether the plan patches point p in any block.
func (s *patchSpec) hasPoint(p vit.HookPoint) bool {
	return s != nil && slices.ContainsFunc(s.hooks, func(h vit.Hook) bool { return h.Point == p })
}

// patchInputs are one call's replacements (uploaded once, copied into each
// batch's plan) and the selection rows of every site.
type patchInputs struct {
	src *buf
	sel []uint32 // 3 per site: hook id, head, token (-1: all)
}

// CheckPatchable says whether the GPU forward patches every hook of sites,
// naming the first it does not.
func (b *Backend) CheckPatchable(sites []patching.Site) error {
	c := b.model.Config
	for _, s := range sites {
		if _, ok := patchLayoutOf(c, s.Hook, c.NumTokens()); !ok {
			return fmt.Errorf("gpu: patching at %s is not supported on the GPU backend (it patches %s)", s.Hook.Name(), patchHookNames)
		}
	}
	return nil
}

var _ patching.Patcher = (*Backend)(nil)

// PatchLogits implements patching.Patcher: the corrupted image once per
// site, with the site's elements replaced by from's activation at its hook
// (zeros where from is nil), in batches of as many sites as fit; it returns
// each site's logits. Every token is kept (as patching.CPU).
func (b *Backend) PatchLogits(corrupt *vit.Tensor, sites []patching.Site, from patching.Source, edit vit.AttnEdit) ([][]float32, error) {
	c := b.model.Config
	if err := c.CheckInput(corrupt); err != nil {
		return nil, err
	}
	if err := c.CheckEdit(edit); err != nil {
		return nil, err
	}
	if err := b.CheckPatchable(sites); err != nil {
		return nil, err
	}
	if len(sites) == 0 {
		return nil, nil
	}
	n := c.NumTokens()
	var hooks []vit.Hook
	for _, h := range c.Hooks() {
		if slices.ContainsFunc(sites, func(s patching.Site) bool { return s.Hook == h }) {
			hooks = append(hooks, h)
		}
	}
	key := planKey{n: n, edit: edit, patch: patchKey(hooks)}
	spec, err := parsePatchSpec(c, key.patch, n)
	if err != nil {
		return nil, err
	}
	src := make([]float32, spec.words)
	if from != nil {
		for i, h := range spec.hooks {
			t := from[h]
			if t == nil {
				return nil, fmt.Errorf("gpu: no activation at %s to patch in", h.Name())
			}
			if want := shapeSize(c.HookShape(h, n)); len(t.Data) != want {
				return nil, fmt.Errorf("gpu: %s: the replacement has %d values, the activation %v", h.Name(), len(t.Data), c.HookShape(h, n))
			}
			copy(src[spec.srcOff[i]:], t.Data)
		}
	}
	in := &patchInputs{}
	for _, s := range sites {
		if s.Head >= c.Heads || s.Token >= n {
			return nil, fmt.Errorf("gpu: site %s head %d token %d out of range (%d heads, %d tokens)", s.Hook.Name(), s.Head, s.Token, c.Heads, n)
		}
		in.sel = append(in.sel, uint32(int32(spec.id(s.Hook))), uint32(int32(s.Head)), uint32(int32(s.Token)))
	}
	if err := b.d.check(); err != nil {
		return nil, err
	}
	tokens := make([]int, n)
	for i := range tokens {
		tokens[i] = i
	}
	images, toks := make([]*vit.Tensor, len(sites)), make([][]int, len(sites))
	for i := range sites {
		images[i], toks[i] = corrupt, tokens
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ks == nil {
		return nil, errors.New("gpu: the backend is closed")
	}
	if in.src, err = upload(b.d, "patch.replacements", f32bytes(src), wgpu.BufferUsageCopySrc); err != nil {
		return nil, err
	}
	var runs []*batchRun
	defer func() {
		for _, r := range runs { // frees their staging when an error cut the call short
			b.collect(r)
		}
		b.settle()
		freeBuf(in.src)
	}()
	req := lens.Request{Edit: edit}
	idx := make([]int, len(sites))
	for i := range idx {
		idx[i] = i
	}
	for rest := idx; len(rest) > 0; {
		size, err := b.batchSize(key, nil, len(rest))
		if err != nil {
			return nil, err
		}
		key.batch = size
		run, err := b.startBatch(key, req, images, toks, rest[:size], in)
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
		rest = rest[size:]
	}
	out := make([][]float32, len(sites))
	for _, r := range runs {
		b.collect(r)
		if r.err != nil {
			return nil, r.err
		}
		for bi, i := range r.idx {
			out[i] = r.results[bi].Logits
		}
	}
	return out, nil
}

func shapeSize(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// selBytes is the selection rows of a batch's sites (idx into in.sel's sites).
func (in *patchInputs) selBytes(idx []int) []byte {
	out := make([]byte, 0, 12*len(idx))
	for _, i := range idx {
		for _, w := range in.sel[3*i : 3*i+3] {
			out = binary.LittleEndian.AppendUint32(out, w)
		}
	}
	return out
}

// patchAt records the patch of hook h's activation in v, if the plan
// patches h.
func (f *forwardRecorder) patchAt(h vit.Hook, v view) error {
	id := f.patch.id(h)
	if id < 0 {
		return nil
	}
	l, _ := patchLayoutOf(f.b.model.Config, h, f.key.n)
	return f.p.patch("patch."+h.Point.String(), v, f.v("patch_src"), f.v("patch_sel"), f.key.batch, l, id, f.patch.srcOff[id])
}

// patches says whether the plan patches point p of block blk.
func (f *forwardRecorder) patches(p vit.HookPoint, blk int) bool {
	return f.patch.id(vit.Hook{Point: p, Block: blk}) >= 0
}
