package checkpoint

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"vitlens/vit"
)

// ClassHead is a class-embedding head from a file of its own (--head, the
// app's "Load class embeddings"): a linear map from the model's final
// embedding (after its norm and its projection head, if any) to classes,
// such as CLIP zero-shot text embeddings or a linear probe.
type ClassHead struct {
	Name    string
	Classes int
	Embed   int       // E, the width of the model's final embedding
	W       []float32 // Classes×Embed
	B       []float32 // Classes; zeros when the file has no bias
	// ClassNames come from the file's metadata "classes" (nil without).
	ClassNames []string
	// Normalize is the metadata "normalize": "true": the embedding is
	// L2-normalised before this head (vit.EmbedNorm).
	Normalize bool
}

// ReadHead reads a head file: safetensors with `weight` [C, E] and an
// optional `bias` [C]; metadata `classes` (JSON list) names the classes.
// Metadata "normalize": "true" L2-normalises the embedding first, as
// zero-shot CLIP does (ranks unchanged with a bias-free head, logits
// scaled).
func ReadHead(name string, data []byte) (*ClassHead, error) {
	ts, meta, format, err := ReadTensors(name, data)
	if err != nil {
		return nil, err
	}
	if format != FormatSafetensors {
		return nil, fmt.Errorf("%s: a head file is safetensors (weight [classes, embed], optional bias [classes]); this is %s", name, format)
	}
	for k := range ts {
		if k != "weight" && k != "bias" {
			return nil, fmt.Errorf("%s: unexpected tensor %q in a head file (want weight and optional bias)", name, k)
		}
	}
	w := ts["weight"]
	if w == nil || len(w.Shape) != 2 || w.Shape[0] == 0 || w.Shape[1] == 0 {
		return nil, fmt.Errorf("%s: want a tensor \"weight\" of shape [classes, embed]", name)
	}
	h := &ClassHead{Name: name, Classes: w.Shape[0], Embed: w.Shape[1], W: w.Data, B: make([]float32, w.Shape[0])}
	if b := ts["bias"]; b != nil {
		if len(b.Data) != h.Classes {
			return nil, fmt.Errorf("%s: bias has %d values for %d classes", name, len(b.Data), h.Classes)
		}
		h.B = b.Data
	}
	for _, v := range slices.Concat(h.W, h.B) {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("%s: the head holds %v", name, v)
		}
	}
	switch meta["normalize"] {
	case "", "false":
	case "true":
		h.Normalize = true
	default:
		return nil, fmt.Errorf(`%s: metadata "normalize" is %q, want "true" or "false"`, name, meta["normalize"])
	}
	if s := meta["classes"]; s != "" {
		if h.ClassNames, err = parseNames(s); err != nil {
			return nil, fmt.Errorf("%s: metadata \"classes\": %v", name, err)
		}
		if len(h.ClassNames) != h.Classes {
			return nil, fmt.Errorf("%s: metadata \"classes\" has %d names for %d classes", name, len(h.ClassNames), h.Classes)
		}
	}
	return h, nil
}

// ApplyHead makes h the model's class embedding, composed with the model's
// own head, which for a CLIP-style tower is its projection P [E, D]:
// W' = W·P, b' = W·b_P + b, so every backend and analysis reads classes
// through final norm, projection and this head as one linear map. The
// config's class count becomes h's.
func ApplyHead(m *vit.Model, h *ClassHead) error {
	c := m.Config
	if c.DistToken {
		return fmt.Errorf("%s: a head file on a distilled DeiT is not supported (its output mixes two heads)", h.Name)
	}
	if h.Embed != c.Classes {
		return fmt.Errorf("%s: the head reads %d-wide embeddings, but the model's head gives %d", h.Name, h.Embed, c.Classes)
	}
	d := c.Dim
	out := vit.Linear{In: d, Out: h.Classes, W: make([]float32, h.Classes*d), B: make([]float32, h.Classes)}
	// Once per load (C·E·D multiply-adds, about a second for ImageNet over
	// ViT-B/16 CLIP), accumulated in float64 so the composition adds no
	// rounding of its own.
	acc := make([]float64, d)
	headW := m.Head.Weights()
	for k := 0; k < h.Classes; k++ {
		clear(acc)
		b := float64(h.B[k])
		for e, w := range h.W[k*h.Embed : (k+1)*h.Embed] {
			for i, p := range headW[e*d : (e+1)*d] {
				acc[i] += float64(w) * float64(p)
			}
			b += float64(w) * float64(m.Head.B[e])
		}
		for i, v := range acc {
			out.W[k*d+i] = float32(v)
		}
		out.B[k] = float32(b)
	}
	if h.Normalize {
		m.Normalize = &vit.EmbedNorm{Proj: m.Head, ClassBias: h.B}
	}
	m.Head = out
	m.Config.Classes = h.Classes
	if err := m.CheckShapes(); err != nil {
		return err
	}
	m.Pack()
	return nil
}

// parseNames reads a JSON list of names.
func parseNames(s string) ([]string, error) {
	var names []string
	if err := json.Unmarshal([]byte(s), &names); err != nil {
		return nil, fmt.Errorf("not a JSON list of names: %v", err)
	}
	return names, nil
}
