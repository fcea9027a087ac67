package explain

import (
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

// backward propagates gLogits = ∂L/∂logits through the whole model and
// returns ∂L/∂A_b for every block b (H×n×n) and ∂L/∂(block-0 input).
func (t *tape) backward(gLogits []float32) (gProbs []*vit.Tensor, gEmbed []float32) {
	m, c := t.m, t.m.Config
	n, d := t.n, c.Dim
	gNormed := make([]float32, d)
	LinearBackward(gNormed, gLogits, 1, m.Head)
	gPooled := make([]float32, d)
	LayerNormBackward(gPooled, gNormed, t.Pooled, 1, d, m.Norm, c.LNEps)
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
		bt := &t.Blocks[b]
		// x_out = x_mid + mlp update.
		gMo := slices.Clone(gx)
		if c.PostNorm {
			LayerNormBackward(gMo, gMo, bt.MLPOut, n, d, blk.Norm2, c.LNEps)
		}
		gHidden := make([]float32, n*c.MLPDim)
		LinearBackward(gHidden, gMo, n, blk.FC2)
		GELUBackward(gHidden, bt.FC1)
		gMlpIn := make([]float32, n*d)
		LinearBackward(gMlpIn, gHidden, n, blk.FC1)
		if !c.PostNorm {
			LayerNormBackward(gMlpIn, gMlpIn, bt.Mid, n, d, blk.Norm2, c.LNEps)
		}
		gMid := gx
		vit.Add(gMid, gMlpIn)
		// x_mid = x_in + attention update.
		gU := slices.Clone(gMid)
		if c.PostNorm {
			LayerNormBackward(gU, gU, bt.AttnOut, n, d, blk.Norm1, c.LNEps)
		}
		gHeads := make([]float32, n*d)
		LinearBackward(gHeads, gU, n, blk.Proj)
		var gQKV []float32
		gProbs[b], gQKV = AttentionBackward(bt.QKV, bt.Probs, gHeads, n, c.Heads, c.HeadDim())
		gAttnIn := make([]float32, n*d)
		LinearBackward(gAttnIn, gQKV, n, blk.QKV)
		if !c.PostNorm {
			LayerNormBackward(gAttnIn, gAttnIn, bt.In, n, d, blk.Norm1, c.LNEps)
		}
		vit.Add(gMid, gAttnIn)
		gx = gMid
	}
	return gProbs, gx
}
