// Package activations writes a model's activations at named hooks as
// safetensors files: one tensor per hook, [images, tokens, ...], in float32
// or float16, under the hook's TransformerLens name, so tools that name
// their hook point this way (ViT-Prisma, SAELens) read them unchanged.
package activations

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/nlpodyssey/safetensors"

	"vitlens/vit"
)

// Tokens says which sequence positions are kept.
type Tokens string

const (
	AllTokens   Tokens = "all"
	CLSToken    Tokens = "cls"
	PatchTokens Tokens = "patches"
)

// Positions lists the kept positions of a full sequence.
func (t Tokens) Positions(c vit.Config) ([]int, error) {
	var out []int
	switch t {
	case AllTokens:
		for i := 0; i < c.NumTokens(); i++ {
			out = append(out, i)
		}
	case CLSToken:
		if !c.ClassToken {
			return nil, fmt.Errorf("--tokens cls: this model has no [CLS] token (use all or patches)")
		}
		out = []int{0}
	case PatchTokens:
		for i := c.FirstImageToken(); i < c.NumTokens(); i++ {
			out = append(out, i)
		}
	default:
		return nil, fmt.Errorf("--tokens must be all, cls or patches, got %q", t)
	}
	return out, nil
}

// DType is the stored number format.
type DType string

const (
	F32 DType = "f32"
	F16 DType = "f16"
)

// ParseDType reads --dtype.
func ParseDType(s string) (DType, error) {
	switch d := DType(strings.ToLower(s)); d {
	case F32, F16:
		return d, nil
	}
	return "", fmt.Errorf("--dtype must be f32 or f16, got %q", s)
}

// Select keeps the given sequence positions of one activation at h: the
// first axis, or for attn.hook_pattern the query axis (H×q×n stays
// head-first, as TransformerLens stores it).
func Select(h vit.Hook, act *vit.Tensor, positions []int) *vit.Tensor {
	if h.Point == vit.HookPattern {
		heads, n := act.Shape[0], act.Shape[1]
		out := vit.NewTensor(heads, len(positions), n)
		for k := 0; k < heads; k++ {
			for i, t := range positions {
				copy(out.Data[(k*len(positions)+i)*n:], act.Data[(k*n+t)*n:(k*n+t+1)*n])
			}
		}
		return out
	}
	row := act.Numel() / act.Shape[0]
	shape := append([]int{len(positions)}, act.Shape[1:]...)
	out := vit.NewTensor(shape...)
	for i, t := range positions {
		copy(out.Data[i*row:], act.Data[t*row:(t+1)*row])
	}
	return out
}

// Batch is the activations of a run of images at a set of hooks.
type Batch struct {
	Hooks  []vit.Hook
	IDs    []string
	Index  []int64 // each image's index in the dataset selection
	tensor map[vit.Hook][]float32
	shape  map[vit.Hook][]int // one image's shape
}

// NewBatch starts an empty batch for hooks.
func NewBatch(hooks []vit.Hook) *Batch {
	return &Batch{Hooks: hooks, tensor: map[vit.Hook][]float32{}, shape: map[vit.Hook][]int{}}
}

// Add appends one image's activations (selected, one per hook).
func (b *Batch) Add(index int, id string, acts map[vit.Hook]*vit.Tensor) error {
	for _, h := range b.Hooks {
		a := acts[h]
		if a == nil {
			return fmt.Errorf("image %s: no activation at %s", id, h.Name())
		}
		if s, ok := b.shape[h]; ok && fmt.Sprint(s) != fmt.Sprint(a.Shape) {
			return fmt.Errorf("image %s: %s is %v, earlier images %v", id, h.Name(), a.Shape, s)
		}
		b.shape[h] = a.Shape
		b.tensor[h] = append(b.tensor[h], a.Data...)
	}
	b.IDs = append(b.IDs, id)
	b.Index = append(b.Index, int64(index))
	return nil
}

// Safetensors encodes the batch: a tensor per hook named by the hook,
// [images, ...], an I64 tensor "images" of dataset indices, and metadata
// "ids" (JSON list of image ids) next to meta.
func (b *Batch) Safetensors(dtype DType, meta map[string]string) ([]byte, error) {
	views := map[string]safetensors.TensorView{}
	n := len(b.IDs)
	for _, h := range b.Hooks {
		shape := []uint64{uint64(n)}
		for _, d := range b.shape[h] {
			shape = append(shape, uint64(d))
		}
		if n == 0 {
			shape = []uint64{0}
		}
		dt, data := encode(dtype, b.tensor[h])
		v, err := safetensors.NewTensorView(dt, shape, data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.Name(), err)
		}
		views[h.Name()] = v
	}
	idx := make([]byte, 0, 8*n)
	for _, i := range b.Index {
		idx = binary.LittleEndian.AppendUint64(idx, uint64(i))
	}
	v, err := safetensors.NewTensorView(safetensors.I64, []uint64{uint64(n)}, idx)
	if err != nil {
		return nil, err
	}
	views["images"] = v
	ids, err := json.Marshal(b.IDs)
	if err != nil {
		return nil, err
	}
	all := map[string]string{"ids": string(ids)}
	for k, v := range meta {
		all[k] = v
	}
	return safetensors.Serialize(views, all)
}

func encode(dtype DType, v []float32) (safetensors.DType, []byte) {
	if dtype == F16 {
		b := make([]byte, 0, 2*len(v))
		for _, x := range v {
			b = binary.LittleEndian.AppendUint16(b, Float16(x))
		}
		return safetensors.F16, b
	}
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return safetensors.F32, b
}

// Float16 rounds x to the nearest IEEE 754 binary16 value (ties to even),
// with overflow to ±Inf, gradual underflow to subnormals, and NaN kept NaN.
func Float16(x float32) uint16 {
	bits := math.Float32bits(x)
	sign := uint16(bits>>16) & 0x8000
	exp := int(bits>>23&0xff) - 127
	mant := bits & 0x7fffff
	switch {
	case exp == 128: // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp > 15:
		return sign | 0x7c00
	case exp >= -14: // normal: keep 10 of 23 mantissa bits
		h := uint32(exp+15)<<10 | mant>>13
		rest := mant & 0x1fff
		if rest > 0x1000 || rest == 0x1000 && h&1 == 1 {
			h++ // may carry into the exponent, up to Inf: still correct
		}
		return sign | uint16(h)
	case exp >= -25: // subnormal: value = m·2⁻²⁴
		m := mant | 0x800000 // the implicit bit
		shift := uint(-exp - 14 + 13)
		h := m >> shift
		rest := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rest > half || rest == half && h&1 == 1 {
			h++
		}
		return sign | uint16(h)
	}
	return sign
}
