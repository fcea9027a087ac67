// Package memory implements the key-value memory analyses of the paper (spec
// §3.5): the columns of the MLP's fc2 (and of the attention out-projection)
// are "value vectors" that write into the residual stream, the fc1
// pre-activations (and per-head attention outputs) are their "coefficients",
// and the class projection of a value, P = E·W_out, says which classes a
// memory promotes.
//
// Everything is computed from the weights and from per-image taps, streaming,
// instead of storing the raw coefficient tensors as the original did (57-800
// GB, spec A33). The model's weights are never modified (the original
// normalised them in place, A12).
package memory

import (
	"fmt"
	"math"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// Layer is the sublayer whose memories are analysed.
type Layer string

const (
	Attn Layer = "attn"
	MLP  Layer = "mlp"
)

// ParseLayer accepts "attn" and "mlp".
func ParseLayer(s string) (Layer, error) {
	switch Layer(s) {
	case Attn, MLP:
		return Layer(s), nil
	}
	return "", fmt.Errorf("unknown layer %q (want attn or mlp)", s)
}

// TopK is the number of memories per token and per class, as in the paper.
const TopK = 5

// values returns the value matrix W_out of a block's layer in PyTorch layout
// (Dim×M): memory j's value vector is column j.
func values(m *vit.Model, b int, l Layer) vit.Linear {
	if l == MLP {
		return m.Blocks[b].FC2
	}
	return m.Blocks[b].Proj
}

// Projection computes P = E·W_out (Classes×M) for one block and layer, with no
// LayerNorm and no bias, as the original does.
func Projection(m *vit.Model, b int, l Layer) []float32 {
	w := values(m, b, l) // Dim×M
	c, mem := m.Config.Classes, w.In
	// P[c,j] = Σ_i E[c,i]·W[i,j]: x·W on W's panels.
	p := make([]float32, c*mem)
	w.MatMul(p, m.Head.Weights(), c)
	return p
}

// ValueTop is what one memory's value vector promotes: the TopK classes of
// its column of P = E·W_out, best first, with their entries of P.
type ValueTop struct {
	Classes [TopK]int32
	Logits  [TopK]float32
}

// ValueClasses returns, for every memory of block b's layer, the TopK
// classes its value promotes (the original's interpretable value vectors,
// notebook 2). With fewer than TopK classes the tail holds −1.
func ValueClasses(m *vit.Model, b int, l Layer) []ValueTop {
	p := Projection(m, b, l)
	c := m.Config.Classes
	mem := len(p) / c
	out := make([]ValueTop, mem)
	col := make([]float32, c)
	top := make([]int32, min(TopK, c))
	for j := range out {
		for k := range col {
			col[k] = p[k*mem+j]
		}
		lens.TopK(top, col)
		for i := range out[j].Classes {
			out[j].Classes[i] = -1
			if i < len(top) {
				out[j].Classes[i], out[j].Logits[i] = top[i], col[top[i]]
			}
		}
	}
	return out
}

// Block holds what the per-token analyses need of one block's memories,
// derived once from the weights.
type Block struct {
	Layer Layer
	M     int
	// ClassTop[c] holds the TopK memories with the largest P[c,·] (T_c).
	ClassTop [][TopK]int32
	// MemoryClass[j] is the class memory j promotes most: argmax_c P[c,j].
	MemoryClass []int32
}

// NewBlock derives the class→memories and memory→class maps of block b.
func NewBlock(m *vit.Model, b int, l Layer) *Block {
	p := Projection(m, b, l)
	c := m.Config.Classes
	mem := len(p) / c
	blk := &Block{Layer: l, M: mem, ClassTop: make([][TopK]int32, c), MemoryClass: make([]int32, mem)}
	top := make([]int32, TopK)
	for k := 0; k < c; k++ {
		lens.TopK(top, p[k*mem:(k+1)*mem])
		copy(blk.ClassTop[k][:], top)
	}
	for j := 0; j < mem; j++ {
		best := 0
		for k := 1; k < c; k++ {
			if p[k*mem+j] > p[best*mem+j] {
				best = k
			}
		}
		blk.MemoryClass[j] = int32(best)
	}
	return blk
}

// Coefficients returns the memory coefficients of block b's layer from a
// trace: fc1 pre-activations for the MLP (A11: before GELU, as the original),
// concatenated head outputs for attention. Shape tokens×M.
func Coefficients(tr *vit.Trace, b int, l Layer) (*vit.Tensor, error) {
	var t []*vit.Tensor
	if l == MLP {
		t = tr.FC1
	} else {
		t = tr.Heads
	}
	if t == nil || t[b] == nil {
		return nil, fmt.Errorf("trace has no %s coefficients for block %d (tap FC1/Heads)", l, b)
	}
	return t[b], nil
}

// TokenTop writes the TopK most activated memories (largest signed
// coefficient) of every token: tokens×TopK.
func TokenTop(coef *vit.Tensor) []int32 {
	out := make([]int32, coef.Shape[0]*TopK)
	tokenTop(out, coef)
	return out
}

func tokenTop(out []int32, coef *vit.Tensor) {
	n, mem := coef.Shape[0], coef.Shape[1]
	for t := 0; t < n; t++ {
		lens.TopK(out[t*TopK:(t+1)*TopK], coef.Data[t*mem:(t+1)*mem])
	}
}

// TokenTops is TokenTop of each of coefs, read in one job of the browser's
// threaded module (vit.TopRows, whose twin TokenTop is) when they are as
// wide, else token by token in Go.
func TokenTops(coefs []*vit.Tensor) [][]int32 {
	out, x := make([][]int32, len(coefs)), make([][]float32, len(coefs))
	same := len(coefs) > 0
	for i, c := range coefs {
		out[i] = make([]int32, c.Shape[0]*TopK)
		x[i] = c.Data[:c.Shape[0]*c.Shape[1]]
		same = same && c.Shape[1] == coefs[0].Shape[1]
	}
	if same && vit.TopRows(out, x, coefs[0].Shape[1], TopK) {
		return out
	}
	for i, c := range coefs {
		tokenTop(out[i], c)
	}
	return out
}

// Agrees reports whether any of a token's top memories is among the class's
// top memories: the key-value agreement of spec §3.5 (the code's reading,
// A10: top memories per class, not top classes per memory).
func (b *Block) Agrees(tokenTop []int32, class int) bool {
	for _, j := range tokenTop {
		for _, k := range b.ClassTop[class] {
			if j == k {
				return true
			}
		}
	}
	return false
}

// Composes reports whether any of a token's top memories promotes the class
// the sublayer output predicts (its top-1 through the lens): compositionality.
func (b *Block) Composes(tokenTop []int32, predicted int32) bool {
	for _, j := range tokenTop {
		if j >= 0 && b.MemoryClass[j] == predicted {
			return true
		}
	}
	return false
}

// ClassValueAgreement returns, per class, the largest cosine similarity
// between the class embedding (row of E) and any value vector (column of
// W_out) of block b's layer. Nothing is normalised in place.
func ClassValueAgreement(m *vit.Model, b int, l Layer) []float64 {
	w := values(m, b, l)
	c, d, mem := m.Config.Classes, m.Config.Dim, w.In
	colNorm := make([]float64, mem)
	for i := 0; i < d; i++ {
		for j := 0; j < mem; j++ {
			v := float64(w.At(i, j))
			colNorm[j] += v * v
		}
	}
	p := Projection(m, b, l)
	out := make([]float64, c)
	for k := 0; k < c; k++ {
		var en float64
		for _, v := range m.Head.Row(k) {
			en += float64(v) * float64(v)
		}
		en = math.Sqrt(en)
		best := math.Inf(-1)
		for j := 0; j < mem; j++ {
			den := en * math.Sqrt(colNorm[j])
			if den == 0 {
				continue
			}
			if cos := float64(p[k*mem+j]) / den; cos > best {
				best = cos
			}
		}
		out[k] = best
	}
	return out
}
