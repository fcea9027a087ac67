package session

import (
	"fmt"

	"vitlens/vit"
	"vitlens/vit/lens"
	"vitlens/vit/memory"
)

// MemoryClasses is how many classes are listed per memory value.
const MemoryClasses = 3

// Memory is one of a token's most activated memories.
type Memory struct {
	Layer memory.Layer
	Index int     // fc1 unit (MLP) or concatenated head-output channel (attention)
	Head  int     // the head that channel belongs to; -1 for the MLP
	Coef  float32 // its coefficient for this token
	// Classes are the classes its value vector promotes most: the top of
	// column Index of E·W_out.
	Classes []int32
}

// MemoryKey names one memory: its block, layer and index.
type MemoryKey struct {
	Block int
	Layer memory.Layer
	Index int
}

// ValueClasses returns the classes each memory's value promotes (see
// valueClasses). It needs the weights: the engine answers it for the page,
// which keeps the answers with SetValueClasses.
func (m *Model) ValueClasses(keys []MemoryKey) ([][]int32, error) {
	if !m.HasWeights() {
		return nil, fmt.Errorf("%s: the page's copy of the model has no weights", m.Name)
	}
	c := m.Model.Config
	for _, k := range keys {
		width := c.MLPDim
		switch {
		case k.Layer == memory.Attn:
			width = c.Dim
		case k.Layer != memory.MLP:
			return nil, fmt.Errorf("memory layer %q: want %q or %q", k.Layer, memory.MLP, memory.Attn)
		}
		if k.Block < 0 || k.Block >= c.Depth || k.Index < 0 || k.Index >= width {
			return nil, fmt.Errorf("no %s memory %d in block %d (%d blocks, %d memories)", k.Layer, k.Index, k.Block, c.Depth, width)
		}
	}
	return m.valueClasses(keys), nil
}

// SetValueClasses remembers what ValueClasses answered for keys, so that
// Memories lists them on a weightless model.
func (m *Model) SetValueClasses(keys []MemoryKey, classes [][]int32) {
	if m.memories == nil {
		m.memories = map[MemoryKey][]int32{}
	}
	for i, k := range keys {
		if i < len(classes) {
			m.memories[k] = classes[i]
		}
	}
}

// MissingClasses lists the memories Memories would show for the token at
// position pos in the given blocks whose value classes this (weightless)
// model does not know yet.
func (m *Model) MissingClasses(top *MemoryTop, blocks []int, pos int) ([]MemoryKey, error) {
	var out []MemoryKey
	for _, b := range blocks {
		for _, l := range memoryLayers {
			mems, err := m.Memories(top, b, l, pos)
			if err != nil {
				return nil, err
			}
			for _, mem := range mems {
				if mem.Classes == nil {
					out = append(out, MemoryKey{b, l, mem.Index})
				}
			}
		}
	}
	return out, nil
}

// valueClasses returns, for each memory of keys, the MemoryClasses classes
// its value promotes most: the top of column k.Index of E·W_out for its
// block's layer (no LayerNorm, no bias, as memory.Projection). Only the
// asked memories are projected, one column each, so a B/16 costs a few
// MFLOP a memory instead of E·W_out's 2.4 GFLOP a block. The class
// embeddings E are unpacked from the head's panels once for all of keys,
// and only when one is not cached.
func (m *Model) valueClasses(keys []MemoryKey) [][]int32 {
	if m.memories == nil {
		m.memories = map[MemoryKey][]int32{}
	}
	c, d := m.Model.Config.Classes, m.Model.Config.Dim
	var e []float32 // E, Classes×Dim
	col := make([]float32, d)
	scores := make([]float32, c)
	out := make([][]int32, len(keys))
	for n, key := range keys {
		if v, ok := m.memories[key]; ok {
			out[n] = v
			continue
		}
		if e == nil {
			e = m.Model.Head.Weights()
		}
		w := m.Model.Blocks[key.Block].FC2 // Dim×M
		if key.Layer == memory.Attn {
			w = m.Model.Blocks[key.Block].Proj
		}
		for i := range col {
			col[i] = w.At(i, key.Index)
		}
		for k := range scores {
			var sum float32
			for i, x := range e[k*d : (k+1)*d] {
				sum += x * col[i]
			}
			scores[k] = sum
		}
		top := make([]int32, min(MemoryClasses, c))
		lens.TopK(top, scores)
		m.memories[key] = top
		out[n] = top
	}
	return out
}

// Memories returns the memory.TopK most activated memories of the token at
// sequence position pos in block b (from a run's MemoryTop), with the
// classes their values promote: computed on a model with weights, on a
// weightless one those it was told (nil Classes for the others: see
// MissingClasses).
func (m *Model) Memories(top *MemoryTop, b int, l memory.Layer, pos int) ([]Memory, error) {
	idx, coef, err := top.token(b, l, pos)
	if err != nil {
		return nil, err
	}
	var out []Memory
	var keys []MemoryKey
	for i, j := range idx {
		if j < 0 {
			continue
		}
		mem := Memory{Layer: l, Index: int(j), Head: -1, Coef: coef[i]}
		if l == memory.Attn {
			mem.Head = int(j) / m.Model.Config.HeadDim()
		}
		key := MemoryKey{b, l, int(j)}
		mem.Classes = m.memories[key] // known: cached, or what the engine answered
		out = append(out, mem)
		keys = append(keys, key)
	}
	if m.HasWeights() {
		for i, classes := range m.valueClasses(keys) { // the cached classes, or computed once
			out[i].Classes = classes
		}
	}
	return out, nil
}

// MemoryTop is what the memories view and its CSV read of a run's memory
// coefficients: for every layer, block and token, the memory.TopK memories
// with the largest coefficients (memory.TokenTop) and those coefficients.
// The coefficients themselves (fc1 pre-activations, concatenated head
// outputs) are tokens×(MLPDim+Dim) floats a block, 36 MB of a B/16's
// analysis: the engine keeps them and sends the page this (0.2 MB).
type MemoryTop struct {
	Depth, Tokens int
	// Index and Coef are laid out [layer][block][token][memory.TopK], the
	// MLP's first, each token's best first; Index is −1 (and Coef 0) where
	// a layer has fewer than memory.TopK memories.
	Index []int32
	Coef  []float32
}

// memoryLayers are the layers of a MemoryTop, in its order.
var memoryLayers = [...]memory.Layer{memory.MLP, memory.Attn}

// TopMemories summarises a trace's memory coefficients (its FC1 and Heads
// taps) into a MemoryTop.
func TopMemories(tr *vit.Trace) (*MemoryTop, error) {
	if tr == nil {
		return nil, fmt.Errorf("no trace to read the memory coefficients of")
	}
	depth, n := len(tr.FC1), len(tr.Tokens)
	t := &MemoryTop{Depth: depth, Tokens: n,
		Index: make([]int32, len(memoryLayers)*depth*n*memory.TopK), Coef: make([]float32, len(memoryLayers)*depth*n*memory.TopK)}
	for li, l := range memoryLayers {
		coefs := make([]*vit.Tensor, depth)
		for b := range depth {
			coef, err := memory.Coefficients(tr, b, l)
			if err != nil {
				return nil, err
			}
			if coef.Shape[0] != n {
				return nil, fmt.Errorf("%s coefficients of block %d: %d tokens, the trace has %d", l, b, coef.Shape[0], n)
			}
			coefs[b] = coef
		}
		for b, top := range memory.TokenTops(coefs) {
			coef := coefs[b]
			width := coef.Shape[1]
			at := (li*depth + b) * n * memory.TopK
			idx := t.Index[at : at+n*memory.TopK]
			copy(idx, top)
			for pos := range n {
				for i, j := range idx[pos*memory.TopK : (pos+1)*memory.TopK] {
					if j >= 0 {
						t.Coef[at+pos*memory.TopK+i] = coef.Data[pos*width+int(j)]
					}
				}
			}
		}
	}
	return t, nil
}

// token returns the top memories of the token at sequence position pos in
// block b's layer l, and their coefficients.
func (t *MemoryTop) token(b int, l memory.Layer, pos int) ([]int32, []float32, error) {
	if t == nil {
		return nil, nil, fmt.Errorf("this analysis has no memory coefficients")
	}
	li := -1
	for i, x := range memoryLayers {
		if x == l {
			li = i
		}
	}
	switch {
	case li < 0:
		return nil, nil, fmt.Errorf("memory layer %q: want %q or %q", l, memory.MLP, memory.Attn)
	case b < 0 || b >= t.Depth:
		return nil, nil, fmt.Errorf("no block %d (%d blocks)", b, t.Depth)
	case pos < 0 || pos >= t.Tokens:
		return nil, nil, fmt.Errorf("token position %d out of range (sequence has %d)", pos, t.Tokens)
	}
	at := ((li*t.Depth+b)*t.Tokens + pos) * memory.TopK
	if at+memory.TopK > len(t.Index) || len(t.Coef) != len(t.Index) {
		return nil, nil, fmt.Errorf("malformed memory summary (%d indices, %d coefficients for %d blocks of %d tokens)",
			len(t.Index), len(t.Coef), t.Depth, t.Tokens)
	}
	return t.Index[at : at+memory.TopK], t.Coef[at : at+memory.TopK], nil
}
