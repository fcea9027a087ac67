package vit

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Forward runs the model on one preprocessed image (Channels×ImageSize×ImageSize)
// and returns the logits and whatever opt.Taps asked for.
func (m *Model) Forward(pixels *Tensor, opt Options) (*Trace, error) {
	c := m.Config
	if len(pixels.Data) != c.Channels*c.ImageSize*c.ImageSize {
		return nil, fmt.Errorf("input is %v, model wants %d×%d×%d", pixels.Shape, c.Channels, c.ImageSize, c.ImageSize)
	}
	x := m.Embed(pixels)
	tokens := make([]int, c.NumTokens())
	for i := range tokens {
		tokens[i] = i
	}
	if opt.Keep != nil {
		var err error
		if x, tokens, err = keepTokens(x, opt.Keep, c); err != nil {
			return nil, err
		}
	}
	if opt.Edit != EditNone && !c.ClassToken {
		return nil, fmt.Errorf("attention edit %q needs a [CLS] token; this model has none", opt.Edit)
	}
	tr := &Trace{Tokens: tokens}
	if opt.Taps.Embed {
		tr.Embed = &Tensor{Shape: []int{len(tokens), c.Dim}, Data: slices.Clone(x)}
	}
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
	for b := range m.Blocks {
		m.block(b, x, tokens, opt, tr)
		if opt.AfterBlock != nil {
			opt.AfterBlock(b)
		}
	}
	tr.Pooled, tr.Logits = m.classify(x, len(tokens))
	return tr, nil
}

// Embed turns pixels into the block-0 input: patch embedding, [CLS], and
// position embeddings (NumTokens×Dim).
func (m *Model) Embed(pixels *Tensor) []float32 {
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
	LinearForward(x[first*d:], cols, c.NumPatches(), m.Patch)
	if c.ClassToken {
		copy(x[:d], m.ClsToken)
	}
	Add(x, m.PosEmbed)
	return x
}

// keepTokens drops every sequence position not in keep (after position
// embeddings, before block 0), preserving the order of keep.
func keepTokens(x []float32, keep []int, c Config) ([]float32, []int, error) {
	if len(keep) == 0 {
		return nil, nil, errors.New("token selection keeps no tokens")
	}
	if c.Pool == PoolCLS && keep[0] != 0 {
		// The classifier reads position 0; it must still be [CLS].
		return nil, nil, errors.New("token selection must keep the [CLS] token (0) first: the classifier reads it")
	}
	d := c.Dim
	seen := make(map[int]bool, len(keep))
	out := make([]float32, 0, len(keep)*d)
	for _, t := range keep {
		if t < 0 || t >= c.NumTokens() {
			return nil, nil, fmt.Errorf("token %d out of range 0..%d", t, c.NumTokens()-1)
		}
		if seen[t] {
			return nil, nil, fmt.Errorf("token %d kept twice", t)
		}
		seen[t] = true
		out = append(out, x[t*d:(t+1)*d]...)
	}
	return out, slices.Clone(keep), nil
}

// block runs block b in place on x (n×D), recording taps into tr.
func (m *Model) block(b int, x []float32, tokens []int, opt Options, tr *Trace) {
	c := m.Config
	blk := &m.Blocks[b]
	n, d := len(tokens), c.Dim
	tap := func(s Site, v []float32) {
		if tr.Sites[s] != nil {
			tr.Sites[s][b] = &Tensor{Shape: []int{n, d}, Data: slices.Clone(v)}
		}
	}
	h := make([]float32, n*d)
	// Attention sublayer.
	attnIn := x
	if !c.PostNorm {
		LayerNorm(h, x, n, d, blk.Norm1, c.LNEps)
		attnIn = h
	}
	qkv := make([]float32, n*3*d)
	LinearForward(qkv, attnIn, n, blk.QKV)
	heads := make([]float32, n*d)
	probs, values := Attention(heads, qkv, n, c.Heads, c.HeadDim(), opt.Edit, tokens, opt.Taps.AttnProbs, opt.Taps.Values)
	if tr.AttnProbs != nil {
		tr.AttnProbs[b] = probs
	}
	if tr.Values != nil {
		tr.Values[b] = values
	}
	if tr.Heads != nil {
		tr.Heads[b] = &Tensor{Shape: []int{n, d}, Data: slices.Clone(heads)}
	}
	update := make([]float32, n*d)
	LinearForward(update, heads, n, blk.Proj)
	if c.PostNorm {
		LayerNorm(update, update, n, d, blk.Norm1, c.LNEps)
	}
	tap(SiteAttn, update)
	Add(x, update)
	tap(SiteHSMid, x)
	// MLP sublayer.
	mlpIn := x
	if !c.PostNorm {
		LayerNorm(h, x, n, d, blk.Norm2, c.LNEps)
		mlpIn = h
	}
	hidden := make([]float32, n*c.MLPDim)
	LinearForward(hidden, mlpIn, n, blk.FC1)
	if tr.FC1 != nil {
		tr.FC1[b] = &Tensor{Shape: []int{n, c.MLPDim}, Data: slices.Clone(hidden)}
	}
	GELU(hidden)
	LinearForward(update, hidden, n, blk.FC2)
	if c.PostNorm {
		LayerNorm(update, update, n, d, blk.Norm2, c.LNEps)
	}
	tap(SiteMLP, update)
	Add(x, update)
	tap(SiteHS, x)
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
	scores := make([]float32, n)
	for h := 0; h < heads; h++ {
		qo, ko, vo := h*dh, d+h*dh, 2*d+h*dh
		for t := 0; t < n; t++ {
			q := qkv[t*3*d+qo : t*3*d+qo+dh]
			for s := 0; s < n; s++ {
				scores[s] = dot(q, qkv[s*3*d+ko:s*3*d+ko+dh]) * scale
			}
			Softmax(scores)
			if t != cls {
				editRow(scores, edit, t, cls)
			}
			if probs != nil {
				copy(probs.Data[(h*n+t)*n:], scores)
			}
			o := out[t*d+qo : t*d+qo+dh]
			clear(o)
			for s, p := range scores {
				if p == 0 {
					continue
				}
				v := qkv[s*3*d+vo : s*3*d+vo+dh]
				for i := range o {
					o[i] += p * v[i]
				}
			}
		}
		if values != nil {
			for s := 0; s < n; s++ {
				copy(values.Data[(h*n+s)*dh:], qkv[s*3*d+vo:s*3*d+vo+dh])
			}
		}
	}
	return probs, values
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

// classify pools the last hidden state, applies the final norm and the head.
func (m *Model) classify(x []float32, n int) (pooled, logits []float32) {
	c := m.Config
	d := c.Dim
	pooled = make([]float32, d)
	switch c.Pool {
	case PoolCLS:
		copy(pooled, x[:d]) // keepTokens guarantees position 0 is [CLS]
	case PoolMean:
		for t := 0; t < n; t++ {
			Add(pooled, x[t*d:(t+1)*d])
		}
		for i := range pooled {
			pooled[i] /= float32(n)
		}
	}
	LayerNorm(pooled, pooled, 1, d, m.Norm, c.LNEps)
	logits = make([]float32, c.Classes)
	LinearForward(logits, pooled, 1, m.Head)
	return pooled, logits
}
