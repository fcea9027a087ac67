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
	out := make([][]int32, len(keys))
	for i, k := range keys {
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
		out[i] = m.valueClasses(k)
	}
	return out, nil
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
func (m *Model) MissingClasses(tr *vit.Trace, blocks []int, pos int) ([]MemoryKey, error) {
	var out []MemoryKey
	for _, b := range blocks {
		for _, l := range []memory.Layer{memory.MLP, memory.Attn} {
			mems, err := m.Memories(tr, b, l, pos)
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

// valueClasses returns the MemoryClasses classes that memory k.Index of a
// block's layer promotes most: the top of column j of E·W_out (no LayerNorm, no bias,
// as memory.Projection). Only the shown memories are projected, one column
// each, so a B/16 costs a few MFLOP instead of E·W_out's 2.4 GFLOP a block.
func (m *Model) valueClasses(key MemoryKey) []int32 {
	if v, ok := m.memories[key]; ok {
		return v
	}
	b, l, j := key.Block, key.Layer, key.Index
	w := m.Model.Blocks[b].FC2 // Dim×M
	if l == memory.Attn {
		w = m.Model.Blocks[b].Proj
	}
	c, d := m.Model.Config.Classes, m.Model.Config.Dim
	col := make([]float32, d)
	for i := range col {
		col[i] = w.At(i, j)
	}
	scores := make([]float32, c)
	for k := range scores {
		var sum float32
		for i, e := range m.Model.Head.Row(k) {
			sum += e * col[i]
		}
		scores[k] = sum
	}
	top := make([]int32, min(MemoryClasses, c))
	lens.TopK(top, scores)
	if m.memories == nil {
		m.memories = map[MemoryKey][]int32{}
	}
	m.memories[key] = top
	return top
}

// Memories returns the memory.TopK most activated memories of the token at
// sequence position pos in block b, with the classes their values promote:
// computed on a model with weights, on a weightless one those it was told
// (nil Classes for the others: see MissingClasses).
func (m *Model) Memories(tr *vit.Trace, b int, l memory.Layer, pos int) ([]Memory, error) {
	coef, err := memory.Coefficients(tr, b, l)
	if err != nil {
		return nil, err
	}
	n, width := coef.Shape[0], coef.Shape[1]
	if pos < 0 || pos >= n {
		return nil, fmt.Errorf("token position %d out of range (sequence has %d)", pos, n)
	}
	row := &vit.Tensor{Shape: []int{1, width}, Data: coef.Data[pos*width : (pos+1)*width]}
	top := memory.TokenTop(row)
	var out []Memory
	for _, j := range top {
		if j < 0 {
			continue
		}
		mem := Memory{Layer: l, Index: int(j), Head: -1, Coef: row.Data[j]}
		if l == memory.Attn {
			mem.Head = int(j) / m.Model.Config.HeadDim()
		}
		key := MemoryKey{b, l, int(j)}
		if m.HasWeights() {
			mem.Classes = m.valueClasses(key) // the cached classes, or computed once
		} else {
			mem.Classes = m.memories[key] // what the engine answered, if it has
		}
		out = append(out, mem)
	}
	return out, nil
}

// Attention returns the attention weights of the token at sequence position
// pos in block b, per head (heads × sequence length).
func Attention(tr *vit.Trace, c vit.Config, b, pos int) ([][]float32, error) {
	if tr == nil || tr.AttnProbs == nil || tr.AttnProbs[b] == nil {
		return nil, fmt.Errorf("no attention maps for block %d", b)
	}
	p := tr.AttnProbs[b] // H×N×N
	h, n := p.Shape[0], p.Shape[1]
	if pos < 0 || pos >= n {
		return nil, fmt.Errorf("token position %d out of range (sequence has %d)", pos, n)
	}
	out := make([][]float32, h)
	for i := range out {
		out[i] = p.Data[(i*n+pos)*n : (i*n+pos+1)*n]
	}
	return out, nil
}
