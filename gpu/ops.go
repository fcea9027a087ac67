package gpu

import (
	"fmt"
	"math"

	"vitlens/vit"
)

// One method per kernel: each records a dispatch with its parameter block and
// workgroup counts. The forward plan and the kernel tests both use these, so
// what is tested is exactly what runs.

func (p *program) layerNorm(op string, out, x, w, b view, rows, d int, eps float32) error {
	return p.dispatch(op, "layernorm", []uint32{uint32(rows), uint32(d), f32bits(eps)},
		groups1D(rows), 8*float64(rows)*float64(d), x, w, b, out)
}

// unary modes of gelu.wgsl.
const (
	unaryGELU      = 0
	unaryErf       = 1
	unaryErfc      = 2
	unaryGELUTanh  = 3
	unaryQuickGELU = 4
)

// activationMode is the gelu.wgsl mode of the config's MLP activation.
func activationMode(c vit.Config) uint32 {
	switch c.Act {
	case vit.ActGELUTanh:
		return unaryGELUTanh
	case vit.ActQuickGELU:
		return unaryQuickGELU
	}
	return unaryGELU
}

func (p *program) unary(op string, x view, count int, mode uint32) error {
	return p.dispatch(op, "gelu", []uint32{uint32(count), mode}, elementGroups("gelu", count), 20*float64(count), x)
}

func (p *program) add(op string, dst, src view, count int) error {
	return p.dispatch(op, "add", []uint32{uint32(count)}, elementGroups("add", count), float64(count), src, dst)
}

func editCode(e vit.AttnEdit) (uint32, error) {
	switch e {
	case vit.EditNone:
		return 0, nil
	case vit.EditSelfOnly:
		return 1, nil
	case vit.EditNoCLS:
		return 2, nil
	}
	return 0, fmt.Errorf("gpu: unknown attention edit %q", e)
}

// attention: out (batch×n×D) from qkv (batch×n×3D); probs (batch×H×n×n)
// written when non-nil. clsPos holds per image [CLS]'s position or -1. The
// fused flash_attention.wgsl runs unless the probabilities are tapped or
// the heads are wider than it holds; attention.wgsl (its twin) runs then.
func (p *program) attention(op string, out, qkv, clsPos view, probs *view, batch, n, heads, dh int, edit vit.AttnEdit) error {
	if probs == nil && dh <= flashMaxHeadDim {
		return p.flashAttention(op, out, qkv, clsPos, batch, n, heads, dh, edit)
	}
	return p.attentionWithProbs(op, out, qkv, clsPos, probs, batch, n, heads, dh, edit)
}

// attentionParams is both attention kernels' parameter block (Params in
// attention_common.wgsl) and the product's FLOPs.
func attentionParams(batch, n, heads, dh int, edit vit.AttnEdit, writeProbs bool) ([]uint32, float64, error) {
	code, err := editCode(edit)
	if err != nil {
		return nil, 0, err
	}
	write := uint32(0)
	if writeProbs {
		write = 1
	}
	scale := float32(1 / math.Sqrt(float64(dh)))
	flops := 4 * float64(batch) * float64(heads) * float64(n) * float64(n) * float64(dh)
	return []uint32{uint32(n), uint32(heads), uint32(dh), uint32(batch), f32bits(scale), code, write}, flops, nil
}

// attentionWithProbs runs attention.wgsl, which writes probs when non-nil.
func (p *program) attentionWithProbs(op string, out, qkv, clsPos view, probs *view, batch, n, heads, dh int, edit vit.AttnEdit) error {
	if dh > maxHeadDim {
		return fmt.Errorf("gpu: head dimension %d over the attention kernel's %d", dh, maxHeadDim)
	}
	params, flops, err := attentionParams(batch, n, heads, dh, edit, probs != nil)
	if err != nil {
		return err
	}
	pv := view{b: p.ks.dummyRW}
	if probs != nil {
		pv = *probs
	}
	return p.dispatch(op, "attention", params,
		[3]uint32{uint32(ceilDiv(n, attnTileQuery)), uint32(heads), uint32(batch)}, flops,
		qkv, clsPos, out, pv)
}

// flashAttention runs flash_attention.wgsl (no probabilities, dh ≤ flashMaxHeadDim).
func (p *program) flashAttention(op string, out, qkv, clsPos view, batch, n, heads, dh int, edit vit.AttnEdit) error {
	if dh > flashMaxHeadDim {
		return fmt.Errorf("gpu: head dimension %d over the fused attention kernel's %d", dh, flashMaxHeadDim)
	}
	params, flops, err := attentionParams(batch, n, heads, dh, edit, false)
	if err != nil {
		return err
	}
	return p.dispatch(op, "flash_attention", params,
		[3]uint32{uint32(ceilDiv(n, flashTileQuery)), uint32(heads), uint32(batch)}, flops,
		qkv, clsPos, out)
}

func (p *program) patchify(op string, cols, pixels view, batch int, c vit.Config) error {
	count := batch * c.NumPatches() * c.Channels * c.PatchSize * c.PatchSize
	return p.dispatch(op, "patchify",
		[]uint32{uint32(batch), uint32(c.Channels), uint32(c.ImageSize), uint32(c.PatchSize), uint32(c.GridSize())},
		elementGroups("patchify", count), 0, pixels, cols)
}

// embed: x (batch×n×D) = prefix-token/patch rows + positions, gathered at keep.
func (p *program) embed(op string, x, patches, prefix, pos, keep view, batch, n int, c vit.Config) error {
	count := batch * n * c.Dim
	return p.dispatch(op, "embed",
		[]uint32{uint32(batch), uint32(n), uint32(c.Dim), uint32(c.NumPatches()), uint32(c.FirstImageToken())},
		elementGroups("embed", count), float64(count), patches, prefix, pos, keep, x)
}

// pool: the mean over positions, or the row at position token.
func (p *program) pool(op string, pooled, x view, batch, n, d int, mean bool, token int) error {
	m := uint32(0)
	if mean {
		m = 1
	}
	return p.dispatch(op, "pool", []uint32{uint32(batch), uint32(n), uint32(d), m, uint32(token)},
		elementGroups("pool", batch*d), float64(batch*n*d), x, pooled)
}

func (p *program) resolveTargets(op string, targets, logits view, batch, classes int) error {
	return p.dispatch(op, "targets", []uint32{uint32(batch), uint32(classes)},
		elementGroups("targets", batch), float64(batch*classes), logits, targets)
}

// lensWeights are the four tensors of the projection.
type lensWeights struct{ normW, normB, headW, headB view }

// lensAux is the lens kernel's one buffer for two sections (a browser
// allows 8 storage buffers per shader stage): with unit (a head file that
// normalises the embedding), from word 0 its bias then the dispatch's
// per-row scales (rownorm); from word ref the reference, the last block's
// logits and log-sum-exps that lensReference writes.
type lensAux struct {
	v    view
	unit bool
	ref  int
}

// lens: readouts of rows hidden vectors (rows×D) into out, starting at output
// row outRow0 (stride lensRowWords(k) words). Row r belongs to image
// (r/n)%batch and token r%(n·batch) of aux's reference, which lensReference
// filled.
func (p *program) lens(op string, out, h, targets view, aux lensAux, w lensWeights, rows, d, classes, k, n, batch int, eps float32, outRow0 int) error {
	return p.lensDispatch(op, lensModeReadout, out, h, targets, aux, w, rows, d, classes, k, n, batch, eps, outRow0)
}

// lensReference: the logits and log-sum-exps of the n·batch rows of h (the
// last block's hs) into aux's reference (n·batch×C, then n·batch), the
// distributions the readouts' KL is measured from. k sizes the top-k the
// kernel keeps anyway.
func (p *program) lensReference(op string, h, targets view, aux lensAux, w lensWeights, d, classes, k, n, batch int, eps float32) error {
	return p.lensDispatch(op, lensModeReference, view{b: p.ks.dummyRW}, h, targets, aux, w, n*batch, d, classes, k, n, batch, eps, 0)
}

// lens.wgsl's modes.
const (
	lensModeReadout   = 0
	lensModeReference = 1
)

func (p *program) lensDispatch(op string, mode uint32, out, h, targets view, aux lensAux, w lensWeights, rows, d, classes, k, n, batch int, eps float32, outRow0 int) error {
	if k > maxLensTopK {
		return fmt.Errorf("gpu: top-k %d over the lens kernel's %d", k, maxLensTopK)
	}
	flops := 2*float64(rows)*float64(classes)*float64(d) + 10*float64(rows)*float64(d) + 12*float64(rows)*float64(classes)
	unit := uint32(0)
	if aux.unit {
		unit = 1
	}
	return p.dispatch(op, "lens",
		[]uint32{uint32(rows), uint32(d), uint32(classes), uint32(k), uint32(n), uint32(batch), f32bits(eps), uint32(outRow0), unit, mode, uint32(aux.ref)},
		groups1D(ceilDiv(rows, lensTileRows)), flops,
		h, w.normW, w.normB, w.headW, w.headB, targets, out, aux.v)
}

// rowNorm: out[off+r] = 1/‖emb_r‖ for rows rows of width e (rownorm.wgsl).
func (p *program) rowNorm(op string, out, emb view, rows, e, off int) error {
	return p.dispatch(op, "rownorm", []uint32{uint32(rows), uint32(e), uint32(off)},
		elementGroups("rownorm", rows), 2*float64(rows)*float64(e), emb, out)
}

// rescale: logits (rows×classes) = (logits − b)·s_r + b with unit = [b; s]
// (rescale.wgsl).
func (p *program) rescale(op string, logits, unit view, rows, classes int) error {
	return p.dispatch(op, "rescale", []uint32{uint32(rows), uint32(classes)},
		elementGroups("rescale", rows*classes), 3*float64(rows)*float64(classes), unit, logits)
}

// lensRowWords is the stride of the lens kernel's output rows: rank, target
// logit, entropy, KL, then the top-k classes.
func lensRowWords(k int) int { return lensOutHead + k }

// patchLayout places one hook's activation in a plan buffer for patch.wgsl:
// rows per image of width values, at column colOff of rows rowStride words
// apart; headMajor is the attention pattern's H·n rows of n (query r%n of
// head r/n), otherwise row r is token r and column j is in head j/headDim.
type patchLayout struct {
	rows, width, rowStride, colOff, headDim, n int
	headMajor                                  bool
}

// patch overwrites, in each image of the batch whose row of sel (hook,
// head, token) names hook, the site's elements of dst with src's words from
// srcOff (one image's activation in the hook's layout).
func (p *program) patch(op string, dst, src, sel view, batch int, l patchLayout, hook, srcOff int) error {
	mode := uint32(0)
	if l.headMajor {
		mode = 1
	}
	count := batch * l.rows * l.width
	return p.dispatch(op, "patch",
		[]uint32{uint32(batch), uint32(l.rows), uint32(l.width), uint32(l.rowStride), uint32(l.colOff), uint32(max(l.headDim, 1)), uint32(l.n), mode, uint32(int32(hook)), uint32(srcOff)},
		elementGroups("patch", count), 0, src, sel, dst)
}

// patternValues: out (batch×n×D) = the heads from probs (batch×H×n×n) and
// the values in qkv, as vit.HeadsFromPattern.
func (p *program) patternValues(op string, out, qkv, probs view, batch, n, heads, dh int) error {
	count := batch * n * heads * dh
	return p.dispatch(op, "pattern_values", []uint32{uint32(batch), uint32(n), uint32(heads), uint32(dh)},
		elementGroups("pattern_values", count), 2*float64(count)*float64(n), qkv, probs, out)
}
