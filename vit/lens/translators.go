package lens

import (
	"fmt"
	"math"
	"strconv"

	"vitlens/vit"
	"vitlens/vit/checkpoint"
)

// A Translator is one learned affine map of the tuned lens (Belrose et al.
// 2023), applied to a residual-stream vector before the final LayerNorm:
//
//	h ↦ h + W·h + c
//
// so that W = 0, c = 0 is the plain lens exactly.
type Translator struct {
	Dim int
	W   []float32 // Dim×Dim, PyTorch Linear layout (out×in)
	B   []float32 // Dim
	w   *vit.PackedT
}

// NewTranslator wraps W (d×d) and b (d); nil means zeros.
func NewTranslator(d int, w, b []float32) *Translator {
	if w == nil {
		w = make([]float32, d*d)
	}
	if b == nil {
		b = make([]float32, d)
	}
	return &Translator{Dim: d, W: w, B: b, w: vit.PackT(w, d, d)}
}

// Apply returns h + h·Wᵀ + c for n vectors (n×Dim). With zero W and c the
// product is exactly zero, so the result equals h bit for bit.
func (t *Translator) Apply(h []float32, n int) []float32 {
	out := make([]float32, n*t.Dim)
	t.w.MatMulT(out, h, n, t.B, false)
	vit.Add(out, h)
	return out
}

// TranslatorSites are the sites a tuned lens translates: the residual
// stream. Sublayer outputs (attn, mlp) are not states of the stream but
// updates to it, and keep the plain lens (docs/method.md).
var TranslatorSites = []vit.Site{vit.SiteHS, vit.SiteHSMid}

// Translators are a tuned lens: per residual site and block, a Translator
// (nil: that site reads through the plain lens at that block).
type Translators struct {
	Dim, Depth int
	bySite     [vit.NumSites][]*Translator
	Meta       map[string]string // provenance: model hash, dataset, split, fit, seed
}

// NewTranslators returns zero translators (the plain lens) for every
// residual site and block of a model of width d and depth depth.
func NewTranslators(d, depth int) *Translators {
	t := &Translators{Dim: d, Depth: depth, Meta: map[string]string{}}
	for _, s := range TranslatorSites {
		t.bySite[s] = make([]*Translator, depth)
		for b := range depth {
			t.bySite[s][b] = NewTranslator(d, nil, nil)
		}
	}
	return t
}

// At returns the translator of site s at block b, or nil for the plain lens.
// A nil *Translators is the plain lens everywhere.
func (t *Translators) At(s vit.Site, b int) *Translator {
	if t == nil || t.bySite[s] == nil {
		return nil
	}
	return t.bySite[s][b]
}

// Set replaces the translator of a residual site at a block.
func (t *Translators) Set(s vit.Site, b int, tr *Translator) { t.bySite[s][b] = tr }

func tensorName(s vit.Site, b int, part string) string {
	return fmt.Sprintf("%s.%d.%s", s, b, part)
}

// Encode writes the translators as safetensors: hs.{b}.weight [D, D],
// hs.{b}.bias [D] and the same for hs_mid, with Meta plus "dim" and
// "depth" as metadata.
func (t *Translators) Encode() ([]byte, error) {
	ts := map[string]*vit.Tensor{}
	for _, s := range TranslatorSites {
		for b, tr := range t.bySite[s] {
			if tr == nil {
				continue
			}
			ts[tensorName(s, b, "weight")] = &vit.Tensor{Shape: []int{t.Dim, t.Dim}, Data: tr.W}
			ts[tensorName(s, b, "bias")] = &vit.Tensor{Shape: []int{t.Dim}, Data: tr.B}
		}
	}
	meta := map[string]string{}
	for k, v := range t.Meta {
		meta[k] = v
	}
	meta["dim"], meta["depth"] = strconv.Itoa(t.Dim), strconv.Itoa(t.Depth)
	return checkpoint.EncodeSafetensors(ts, meta)
}

// ReadTranslators reads a translator file (what `vitlens tune-lens` writes)
// for a model of config c. A site with no tensors at all keeps the plain
// lens; a site with some must have both tensors at every block.
func ReadTranslators(name string, data []byte, c vit.Config) (*Translators, error) {
	ts, meta, format, err := checkpoint.ReadTensors(name, data)
	if err != nil {
		return nil, err
	}
	if format != checkpoint.FormatSafetensors {
		return nil, fmt.Errorf("%s: a translator file is safetensors (what vitlens tune-lens writes); this is %s", name, format)
	}
	t := &Translators{Dim: c.Dim, Depth: c.Depth, Meta: meta}
	if t.Meta == nil {
		t.Meta = map[string]string{}
	}
	if v := meta["dim"]; v != "" && v != strconv.Itoa(c.Dim) {
		return nil, fmt.Errorf("%s: translators of a %s-wide model, this model is %d wide", name, v, c.Dim)
	}
	if v := meta["depth"]; v != "" && v != strconv.Itoa(c.Depth) {
		return nil, fmt.Errorf("%s: translators of a %s-block model, this model has %d blocks", name, v, c.Depth)
	}
	used := map[string]bool{}
	for _, s := range TranslatorSites {
		present := false
		for b := range c.Depth {
			present = present || ts[tensorName(s, b, "weight")] != nil || ts[tensorName(s, b, "bias")] != nil
		}
		if !present {
			continue
		}
		t.bySite[s] = make([]*Translator, c.Depth)
		for b := range c.Depth {
			w, bias := ts[tensorName(s, b, "weight")], ts[tensorName(s, b, "bias")]
			switch {
			case w == nil || bias == nil:
				return nil, fmt.Errorf("%s: %s has translators but not %s and %s", name, s, tensorName(s, b, "weight"), tensorName(s, b, "bias"))
			case len(w.Shape) != 2 || w.Shape[0] != c.Dim || w.Shape[1] != c.Dim:
				return nil, fmt.Errorf("%s: %s has shape %v, want [%d, %d] (the model's width)", name, tensorName(s, b, "weight"), w.Shape, c.Dim, c.Dim)
			case len(bias.Shape) != 1 || bias.Shape[0] != c.Dim:
				return nil, fmt.Errorf("%s: %s has shape %v, want [%d]", name, tensorName(s, b, "bias"), bias.Shape, c.Dim)
			}
			for _, v := range append(append([]float32(nil), w.Data...), bias.Data...) {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return nil, fmt.Errorf("%s: %s.%d holds %v", name, s, b, v)
				}
			}
			t.bySite[s][b] = NewTranslator(c.Dim, w.Data, bias.Data)
			used[tensorName(s, b, "weight")], used[tensorName(s, b, "bias")] = true, true
		}
	}
	if len(used) == 0 {
		return nil, fmt.Errorf("%s: no translators (want tensors hs.{block}.weight and hs.{block}.bias, or hs_mid.*)", name)
	}
	for k := range ts {
		if !used[k] {
			return nil, fmt.Errorf("%s: unexpected tensor %q (a translator file holds hs.{block}.weight/bias and hs_mid.{block}.weight/bias for blocks 0..%d)", name, k, c.Depth-1)
		}
	}
	return t, nil
}
