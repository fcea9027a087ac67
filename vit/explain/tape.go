package explain

import (
	"errors"
	"fmt"
	"slices"

	"vitlens/vit"
)

// tape is one forward pass of the model with what the backward pass needs,
// recorded by vit.Model.Forward itself.
type tape struct {
	m *vit.Model
	n int // sequence length
	vit.Activations
}

// record runs the model on one preprocessed image, keeping the tape.
func record(m *vit.Model, pixels *vit.Tensor) (*tape, error) {
	t := &tape{m: m}
	if _, err := m.Forward(pixels, vit.Options{Record: &t.Activations}); err != nil {
		return nil, err
	}
	t.n = len(t.Tokens)
	return t, nil
}

// replay makes the tape of a forward pass already run (rec, from
// vit.Options.Record), after checking that rec is a whole one of m on the
// whole image: every block there, every token kept.
func replay(m *vit.Model, rec *vit.Activations) (*tape, error) {
	c := m.Config
	if rec == nil {
		return nil, errors.New("no recorded forward pass")
	}
	n, d := len(rec.Tokens), c.Dim
	switch {
	case n != c.NumTokens():
		return nil, fmt.Errorf("the recorded forward pass has %d tokens, the model %d: the maps need the whole image", n, c.NumTokens())
	case len(rec.Blocks) != c.Depth:
		return nil, fmt.Errorf("the recorded forward pass has %d blocks, the model %d", len(rec.Blocks), c.Depth)
	case len(rec.Logits) != c.Classes || len(rec.Pooled) != d:
		return nil, errors.New("the recorded forward pass has no output")
	}
	for b, bt := range rec.Blocks {
		if len(bt.In) != n*d || len(bt.QKV) != 3*n*d || bt.Probs == nil || len(bt.Probs.Data) != c.Heads*n*n ||
			len(bt.AttnOut) != n*d || len(bt.Mid) != n*d || len(bt.FC1) != n*c.MLPDim || len(bt.MLPOut) != n*d {
			return nil, fmt.Errorf("the recorded forward pass lacks block %d's activations", b)
		}
	}
	return &tape{m: m, n: n, Activations: *rec}, nil
}

// normedPooled is the classifier's input after the final norm.
func (t *tape) normedPooled() []float32 {
	c := t.m.Config
	z := make([]float32, c.Dim)
	vit.LayerNorm(z, t.Pooled, 1, c.Dim, t.m.Norm, c.LNEps)
	return z
}

// backward propagates gLogits = ∂L/∂logits through the whole model and
// returns ∂L/∂A_b for every block b (H×n×n) and ∂L/∂(block-0 input). When at
// is set it also hears the gradient at every hook point it passes, in the
// layout vit.Config.HookShape gives (read-only, valid during the call).
// probsOnly stops at block 0's attention probabilities, all that the
// rollout reads: nothing below them (block 0's queries, keys, values, qkv
// projection and norm: a twelfth of a B/16 backward) is computed, and
// gEmbed is nil.
func (t *tape) backward(gLogits []float32, at func(h vit.Hook, g []float32), probsOnly bool) (gProbs []*vit.Tensor, gEmbed []float32) {
	m, c := t.m, t.m.Config
	n, d := t.n, c.Dim
	hook := func(p vit.HookPoint, b int, g []float32) {
		if at != nil {
			at(vit.Hook{Point: p, Block: b}, g)
		}
	}
	gx := make([]float32, n*d)
	// live is how many leading rows of gx can be nonzero: the pooled
	// tokens' until the first attention backward mixes the rows, so the
	// last block's MLP and out-projection run on those rows alone (a
	// twelfth of a B/16 backward's products); the others stay zero.
	live := n
	switch {
	case c.DistToken:
		live = 2
		// logits = (head(LN(x_cls)) + head_dist(LN(x_dist)))/2: each token
		// gets half the logit gradient through its own head and norm.
		half := make([]float32, len(gLogits))
		for i, g := range gLogits {
			half[i] = g / 2
		}
		for row, in := range []struct {
			head   vit.Linear
			pooled []float32
		}{{m.HeadCLS, t.Pooled}, {m.HeadDist, t.PooledDist}} {
			gNormed := make([]float32, d)
			LinearBackward(gNormed, half, 1, in.head)
			LayerNormBackward(gx[row*d:(row+1)*d], gNormed, in.pooled, 1, d, m.Norm, c.LNEps)
		}
	case c.Pool == vit.PoolCLS:
		live = 1
		gNormed := make([]float32, d)
		HeadBackward(m, gNormed, gLogits, t.normedPooled(), 1)
		LayerNormBackward(gx[:d], gNormed, t.Pooled, 1, d, m.Norm, c.LNEps)
	case c.Pool == vit.PoolMean:
		gNormed := make([]float32, d)
		HeadBackward(m, gNormed, gLogits, t.normedPooled(), 1)
		gPooled := make([]float32, d)
		LayerNormBackward(gPooled, gNormed, t.Pooled, 1, d, m.Norm, c.LNEps)
		for i := 0; i < n; i++ {
			for j, g := range gPooled {
				gx[i*d+j] = g / float32(n)
			}
		}
	}
	gProbs = make([]*vit.Tensor, c.Depth)
	// The per-block gradients are overwritten whole in every block, so
	// their buffers go from block to block: allocating them anew was a
	// tenth of a B/16 explanation in the browser (the allocations and the
	// collections they caused).
	gMo, gMlpIn, gU, gHeads, gAttnIn := make([]float32, n*d), make([]float32, n*d), make([]float32, n*d),
		make([]float32, n*d), make([]float32, n*d)
	gHidden, gQKVBuf := make([]float32, n*c.MLPDim), make([]float32, n*3*d)
	for b := c.Depth - 1; b >= 0; b-- {
		blk := &m.Blocks[b]
		bt := &t.Blocks[b]
		// x_out = x_mid + mlp update (post-norm: hook_mlp_out is the update
		// after LN2, so its gradient is the stream's too).
		hook(vit.HookResidPost, b, gx)
		hook(vit.HookMLPOut, b, gx)
		copy(gMo, gx)
		if c.PostNorm {
			LayerNormBackward(gMo, gMo, bt.MLPOut, live, d, blk.Norm2, c.LNEps)
		}
		if at == nil && c.ExactGELU() {
			// W_fc2's product and GELU' in one call: in the browser's
			// threaded module one job, its threads each applying GELU' to
			// their own columns, where ActivationBackward ran on the
			// engine's one thread. The hooks need the gradient between.
			blk.FC2.MatMulGELUGrad(gHidden, gMo, live, bt.FC1)
		} else {
			LinearBackward(gHidden, gMo, live, blk.FC2)
			hook(vit.HookMLPPost, b, gHidden)
			ActivationBackward(c.Act, gHidden[:live*c.MLPDim], bt.FC1[:live*c.MLPDim])
		}
		hook(vit.HookMLPPre, b, gHidden)
		LinearBackward(gMlpIn, gHidden, live, blk.FC1)
		if !c.PostNorm {
			LayerNormBackward(gMlpIn, gMlpIn, bt.Mid, live, d, blk.Norm2, c.LNEps)
		}
		gMid := gx
		vit.Add(gMid, gMlpIn)
		hook(vit.HookResidMid, b, gMid)
		hook(vit.HookAttnOut, b, gMid)
		// x_mid = x_in + attention update.
		copy(gU, gMid)
		if c.PostNorm {
			LayerNormBackward(gU, gU, bt.AttnOut, live, d, blk.Norm1, c.LNEps)
		}
		LinearBackward(gHeads, gU, live, blk.Proj)
		hook(vit.HookZ, b, gHeads)
		stop := probsOnly && b == 0
		gQKV := gQKVBuf
		if stop {
			gQKV = nil
		}
		gProbs[b] = attentionBackward(bt.QKV, bt.Probs, gHeads, n, c.Heads, c.HeadDim(), gQKV)
		live = n
		hook(vit.HookPattern, b, gProbs[b].Data)
		if stop {
			return gProbs, nil
		}
		if at != nil {
			for i, p := range []vit.HookPoint{vit.HookQ, vit.HookK, vit.HookV} {
				hook(p, b, vit.QKVPart(gQKV, i, n, d))
			}
		}
		LinearBackward(gAttnIn, gQKV, n, blk.QKV)
		if !c.PostNorm {
			LayerNormBackward(gAttnIn, gAttnIn, bt.In, n, d, blk.Norm1, c.LNEps)
		}
		vit.Add(gMid, gAttnIn)
		gx = gMid
		hook(vit.HookResidPre, b, gx)
	}
	// Without norm_pre the block-0 input is the sum of the token and
	// position embeddings; with it, their gradient needs norm_pre's input,
	// which the tape does not hold, so those hooks are not heard.
	if !c.NormPre {
		hook(vit.HookEmbed, 0, gx)
		hook(vit.HookPosEmbed, 0, gx)
	}
	return gProbs, gx
}

// HookGradients runs the model on one image and one backward pass of
// L = ⟨gLogits, logits⟩, and returns the logits and ∂L/∂activation at each
// of hooks (layout vit.Config.HookShape). It is what attribution patching
// needs: every gradient from a single backward. The backward covers the
// models explain does, with exact GELU and one classifier head; hook_embed
// and hook_pos_embed are refused after norm_pre.
func HookGradients(m *vit.Model, pixels *vit.Tensor, gLogits []float32, hooks []vit.Hook) (logits []float32, grads map[vit.Hook]*vit.Tensor, err error) {
	c := m.Config
	switch {
	case !c.ExactGELU():
		return nil, nil, fmt.Errorf("gradients need the exact GELU; this model uses %s", c.Act)
	case c.DistToken:
		return nil, nil, errors.New("gradients through a distilled model's two heads are not implemented")
	case len(gLogits) != c.Classes:
		return nil, nil, fmt.Errorf("%d logit gradients for %d classes", len(gLogits), c.Classes)
	}
	want := map[vit.Hook]bool{}
	for _, h := range hooks {
		if c.NormPre && !h.Point.PerBlock() {
			return nil, nil, fmt.Errorf("no gradient at %s: the model applies norm_pre after it", h.Name())
		}
		want[h] = true
	}
	t, err := record(m, pixels)
	if err != nil {
		return nil, nil, err
	}
	grads = map[vit.Hook]*vit.Tensor{}
	t.backward(gLogits, func(h vit.Hook, g []float32) {
		if want[h] {
			grads[h] = &vit.Tensor{Shape: c.HookShape(h, t.n), Data: slices.Clone(g)}
		}
	}, false)
	return t.Logits, grads, nil
}
