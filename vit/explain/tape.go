package explain

import (
	"fmt"
	"slices"

	"vitlens/vit"
)

// tape is a forward pass that keeps what the backward pass needs. It calls
// the same vit ops in the same order as vit.Model.Forward, so its logits are
// bitwise those of the oracle (the tests check it).
type tape struct {
	m      *vit.Model
	n      int       // sequence length
	embed  []float32 // block-0 input
	blocks []blockTape
	final  []float32 // last hidden state, n×D
	pooled []float32 // classifier input before the final norm
	logits []float32
}

type blockTape struct {
	xIn   []float32   // block input
	qkv   []float32   // n×3D
	probs *vit.Tensor // H×n×n post-softmax attention
	heads []float32   // concatenated head outputs, n×D
	u     []float32   // out-projection output (before a post-norm)
	xMid  []float32   // residual stream after the attention addition
	f1    []float32   // fc1 output before GELU
	mo    []float32   // fc2 output (before a post-norm)
}

// record runs the model on one preprocessed image, keeping the tape.
func record(m *vit.Model, pixels *vit.Tensor) (*tape, error) {
	c := m.Config
	if len(pixels.Data) != c.Channels*c.ImageSize*c.ImageSize {
		return nil, fmt.Errorf("input is %v, model wants %d×%d×%d", pixels.Shape, c.Channels, c.ImageSize, c.ImageSize)
	}
	x := m.Embed(pixels)
	n, d := c.NumTokens(), c.Dim
	tokens := make([]int, n)
	for i := range tokens {
		tokens[i] = i
	}
	t := &tape{m: m, n: n, embed: slices.Clone(x), blocks: make([]blockTape, c.Depth)}
	h := make([]float32, n*d)
	for b := range m.Blocks {
		blk := &m.Blocks[b]
		bt := &t.blocks[b]
		bt.xIn = slices.Clone(x)
		attnIn := x
		if !c.PostNorm {
			vit.LayerNorm(h, x, n, d, blk.Norm1, c.LNEps)
			attnIn = h
		}
		bt.qkv = make([]float32, n*3*d)
		vit.LinearForward(bt.qkv, attnIn, n, blk.QKV)
		bt.heads = make([]float32, n*d)
		bt.probs, _ = vit.Attention(bt.heads, bt.qkv, n, c.Heads, c.HeadDim(), vit.EditNone, tokens, true, false)
		bt.u = make([]float32, n*d)
		vit.LinearForward(bt.u, bt.heads, n, blk.Proj)
		update := bt.u
		if c.PostNorm {
			update = make([]float32, n*d)
			vit.LayerNorm(update, bt.u, n, d, blk.Norm1, c.LNEps)
		}
		vit.Add(x, update)
		bt.xMid = slices.Clone(x)
		mlpIn := x
		if !c.PostNorm {
			vit.LayerNorm(h, x, n, d, blk.Norm2, c.LNEps)
			mlpIn = h
		}
		bt.f1 = make([]float32, n*c.MLPDim)
		vit.LinearForward(bt.f1, mlpIn, n, blk.FC1)
		hidden := slices.Clone(bt.f1)
		vit.GELU(hidden)
		bt.mo = make([]float32, n*d)
		vit.LinearForward(bt.mo, hidden, n, blk.FC2)
		update = bt.mo
		if c.PostNorm {
			update = make([]float32, n*d)
			vit.LayerNorm(update, bt.mo, n, d, blk.Norm2, c.LNEps)
		}
		vit.Add(x, update)
	}
	t.final = x
	t.pooled = make([]float32, d)
	switch c.Pool {
	case vit.PoolCLS:
		copy(t.pooled, x[:d])
	case vit.PoolMean:
		for i := 0; i < n; i++ {
			vit.Add(t.pooled, x[i*d:(i+1)*d])
		}
		for i := range t.pooled {
			t.pooled[i] /= float32(n)
		}
	}
	normed := make([]float32, d)
	vit.LayerNorm(normed, t.pooled, 1, d, m.Norm, c.LNEps)
	t.logits = make([]float32, c.Classes)
	vit.LinearForward(t.logits, normed, 1, m.Head)
	return t, nil
}

// backward propagates gLogits = ∂L/∂logits through the whole model and
// returns ∂L/∂A_b for every block b (H×n×n) and ∂L/∂(block-0 input).
func (t *tape) backward(gLogits []float32) (gProbs []*vit.Tensor, gEmbed []float32) {
	m, c := t.m, t.m.Config
	n, d := t.n, c.Dim
	gNormed := make([]float32, d)
	LinearBackward(gNormed, gLogits, 1, m.Head)
	gPooled := make([]float32, d)
	LayerNormBackward(gPooled, gNormed, t.pooled, 1, d, m.Norm, c.LNEps)
	gx := make([]float32, n*d)
	switch c.Pool {
	case vit.PoolCLS:
		copy(gx, gPooled)
	case vit.PoolMean:
		for i := 0; i < n; i++ {
			for j, g := range gPooled {
				gx[i*d+j] = g / float32(n)
			}
		}
	}
	gProbs = make([]*vit.Tensor, c.Depth)
	for b := c.Depth - 1; b >= 0; b-- {
		blk := &m.Blocks[b]
		bt := &t.blocks[b]
		// x_out = x_mid + mlp update.
		gMo := slices.Clone(gx)
		if c.PostNorm {
			LayerNormBackward(gMo, gMo, bt.mo, n, d, blk.Norm2, c.LNEps)
		}
		gHidden := make([]float32, n*c.MLPDim)
		LinearBackward(gHidden, gMo, n, blk.FC2)
		GELUBackward(gHidden, bt.f1)
		gMlpIn := make([]float32, n*d)
		LinearBackward(gMlpIn, gHidden, n, blk.FC1)
		if !c.PostNorm {
			LayerNormBackward(gMlpIn, gMlpIn, bt.xMid, n, d, blk.Norm2, c.LNEps)
		}
		gMid := gx
		vit.Add(gMid, gMlpIn)
		// x_mid = x_in + attention update.
		gU := slices.Clone(gMid)
		if c.PostNorm {
			LayerNormBackward(gU, gU, bt.u, n, d, blk.Norm1, c.LNEps)
		}
		gHeads := make([]float32, n*d)
		LinearBackward(gHeads, gU, n, blk.Proj)
		var gQKV []float32
		gProbs[b], gQKV = AttentionBackward(bt.qkv, bt.probs, gHeads, n, c.Heads, c.HeadDim())
		gAttnIn := make([]float32, n*d)
		LinearBackward(gAttnIn, gQKV, n, blk.QKV)
		if !c.PostNorm {
			LayerNormBackward(gAttnIn, gAttnIn, bt.xIn, n, d, blk.Norm1, c.LNEps)
		}
		vit.Add(gMid, gAttnIn)
		gx = gMid
	}
	return gProbs, gx
}
