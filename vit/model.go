package vit

import (
	"fmt"
	"math"
)

// Linear is a fully connected layer in PyTorch layout: W is Out×In row-major,
// so y = x·Wᵀ + B. B may be nil (no bias). A loaded model's layers are
// packed (Model.Pack): W is then nil and its values live in the CPU GEMM's
// form only; read them through Weights, Row, At or Transposed
// (cpuweights.go).
type Linear struct {
	In, Out int
	W, B    []float32
	packed  *PackedT // W in the GEMM's form, once packed
}

// Norm is a LayerNorm's affine parameters.
type Norm struct {
	W, B []float32
}

// Block is one transformer block. For pre-norm blocks Norm1/Norm2 are applied
// to the sublayer inputs; for post-norm (ResPostBlock) to the sublayer outputs.
type Block struct {
	Norm1 Norm
	QKV   Linear // Out = 3·Dim, rows ordered q, k, v (timm's fused layout)
	Proj  Linear // attention output projection, Dim×Dim
	Norm2 Norm
	FC1   Linear // MLPDim×Dim
	FC2   Linear // Dim×MLPDim
}

// Model holds every weight of a ViT in one canonical layout, whatever
// checkpoint family it came from.
type Model struct {
	Config Config
	// Patch embedding: a conv with kernel = stride = patch, flattened to
	// Dim × (Channels·Patch·Patch) in (c, y, x) order.
	Patch    Linear
	ClsToken []float32 // Dim, nil without a class token
	// DistToken is distilled DeiT's distillation token (Dim), nil without.
	DistToken []float32
	// RegTokens are the register tokens, Registers×Dim, nil without.
	RegTokens []float32
	PosEmbed  []float32 // NumTokens × Dim
	NormPre   Norm      // timm norm_pre, when Config.NormPre
	Blocks    []Block
	// Norm is the classifier-side LayerNorm: timm's `norm` for CLS models,
	// `fc_norm` (applied after pooling) for mean-pooled models. The lens uses
	// it for every projected vector.
	Norm Norm
	// Head is the class embedding the lens reads through (Classes × Dim).
	// For distilled DeiT it is the mean of timm's head and head_dist, which
	// are kept as HeadCLS and HeadDist: the model's output reads them off
	// [CLS] and the distillation token (both zero otherwise).
	Head              Linear
	HeadCLS, HeadDist Linear
	// Normalize, when set, L2-normalises the final embedding before the
	// class head (a head file's "normalize": "true"): see EmbedNorm.
	Normalize *EmbedNorm
}

// EmbedNorm is zero-shot CLIP's normalisation of the embedding before the
// class head. Head is then the composition W·P of the head file W (bias b)
// with the model's projection P (bias b_P), and with e = P·z + b_P for a
// normed vector z,
//
//	logits = W·e/‖e‖ + b = (Head(z) − b)/‖e‖ + b,
//
// so every path keeps its one linear head and rescales afterwards
// (NormalizeLogits). Ranks change only through b: with a bias-free head
// they are those of Head(z).
type EmbedNorm struct {
	Proj      Linear    // P (E×D) with its bias b_P (zeros when it has none)
	ClassBias []float32 // b, the head file's bias (Classes)
}

// NormalizeLogits applies m.Normalize, if any, in place to n rows of
// logits = Head(normed) computed from n normed vectors (D each).
func (m *Model) NormalizeLogits(logits, normed []float32, n int) {
	scales := m.EmbedScales(normed, n)
	c := m.Config.Classes
	for r, s := range scales {
		m.RescaleLogits(logits[r*c:(r+1)*c], s)
	}
}

// EmbedScales returns 1/‖P·normed_r + b_P‖ for each of n normed vectors:
// the factor m.Normalize puts on each row of logits (nil when the model
// does not normalise). All rows in one product, apart from RescaleLogits,
// so that a path finishing logits row by row computes them once per site.
func (m *Model) EmbedScales(normed []float32, n int) []float64 {
	en := m.Normalize
	if en == nil {
		return nil
	}
	e := make([]float32, n*en.Proj.Out)
	m.LinearForward(e, normed, n, en.Proj)
	scales := make([]float64, n)
	for r := range scales {
		scales[r] = 1 / EmbedLength(e[r*en.Proj.Out:(r+1)*en.Proj.Out])
	}
	return scales
}

// RescaleLogits rescales one row of logits by s around the head file's
// bias: (logit − b)·s + b (see EmbedNorm).
func (m *Model) RescaleLogits(row []float32, s float64) {
	b := m.Normalize.ClassBias
	for k, v := range row {
		row[k] = float32(float64(v-b[k])*s) + b[k]
	}
}

// EmbedLength is ‖e‖, summed in float64.
func EmbedLength(e []float32) float64 {
	var ss float64
	for _, v := range e {
		ss += float64(v) * float64(v)
	}
	return math.Sqrt(ss)
}

// MeanHead is distilled DeiT's classifier as one linear map: its eval
// output is (head(x_cls) + head_dist(x_dist))/2, and both tokens end in the
// same final norm, so the class embedding of a token is the mean of the two
// heads' weights and biases: what the model outputs for a vector that is
// both its [CLS] and its distillation token (docs/method.md).
func MeanHead(a, b Linear) Linear {
	aw, bw := a.Weights(), b.Weights()
	out := Linear{In: a.In, Out: a.Out, W: make([]float32, len(aw)), B: make([]float32, len(a.B))}
	for i := range aw {
		out.W[i] = (aw[i] + bw[i]) / 2
	}
	for i := range a.B {
		out.B[i] = (a.B[i] + b.B[i]) / 2
	}
	return out
}

// NumParams counts the scalar parameters.
func (m *Model) NumParams() int {
	n := m.Patch.numWeights() + len(m.Patch.B) + len(m.ClsToken) + len(m.DistToken) + len(m.RegTokens) + len(m.PosEmbed) +
		len(m.Norm.W) + len(m.Norm.B) + m.Head.numWeights() + len(m.Head.B) + len(m.NormPre.W) + len(m.NormPre.B)
	if m.Config.DistToken { // Head is derived from the two heads
		n += m.HeadCLS.numWeights() + len(m.HeadCLS.B) + m.HeadDist.numWeights() + len(m.HeadDist.B) - m.Head.numWeights() - len(m.Head.B)
	}
	for _, b := range m.Blocks {
		n += len(b.Norm1.W) + len(b.Norm1.B) + len(b.Norm2.W) + len(b.Norm2.B)
		for _, l := range []Linear{b.QKV, b.Proj, b.FC1, b.FC2} {
			n += l.numWeights() + len(l.B)
		}
	}
	return n
}

// CheckShapes verifies every weight slice against the config, so a forward
// pass can index without bounds surprises. The error names the tensor.
func (m *Model) CheckShapes() error {
	c := m.Config
	if err := c.Validate(); err != nil {
		return err
	}
	d := c.Dim
	want := func(name string, got []float32, n int) error {
		if len(got) != n {
			return fmt.Errorf("%s has %d values, want %d", name, len(got), n)
		}
		return nil
	}
	lin := func(name string, l Linear, out, in int, bias bool) error {
		if l.In != in || l.Out != out {
			return fmt.Errorf("%s is %d×%d, want %d×%d", name, l.Out, l.In, out, in)
		}
		if l.numWeights() != out*in {
			return fmt.Errorf("%s.weight has %d values, want %d", name, l.numWeights(), out*in)
		}
		if bias || l.B != nil {
			return want(name+".bias", l.B, out)
		}
		return nil
	}
	norm := func(name string, n Norm) error {
		if err := want(name+".weight", n.W, d); err != nil {
			return err
		}
		return want(name+".bias", n.B, d)
	}
	if err := lin("patch_embed", m.Patch, d, c.Channels*c.PatchSize*c.PatchSize, true); err != nil {
		return err
	}
	if c.ClassToken {
		if err := want("cls_token", m.ClsToken, d); err != nil {
			return err
		}
	} else if m.ClsToken != nil {
		return fmt.Errorf("cls_token present but config has no class token")
	}
	if c.DistToken {
		if err := want("dist_token", m.DistToken, d); err != nil {
			return err
		}
	} else if m.DistToken != nil {
		return fmt.Errorf("dist_token present but config has no distillation token")
	}
	if err := want("reg_token", m.RegTokens, c.Registers*d); err != nil {
		return err
	}
	if err := want("pos_embed", m.PosEmbed, c.NumTokens()*d); err != nil {
		return err
	}
	if c.NormPre {
		if err := norm("norm_pre", m.NormPre); err != nil {
			return err
		}
	}
	if len(m.Blocks) != c.Depth {
		return fmt.Errorf("model has %d blocks, config says %d", len(m.Blocks), c.Depth)
	}
	for i, b := range m.Blocks {
		p := fmt.Sprintf("blocks.%d.", i)
		for _, e := range []error{
			norm(p+"norm1", b.Norm1),
			lin(p+"attn.qkv", b.QKV, 3*d, d, c.QKVBias),
			lin(p+"attn.proj", b.Proj, d, d, true),
			norm(p+"norm2", b.Norm2),
			lin(p+"mlp.fc1", b.FC1, c.MLPDim, d, true),
			lin(p+"mlp.fc2", b.FC2, d, c.MLPDim, true),
		} {
			if e != nil {
				return e
			}
		}
	}
	if err := norm("norm", m.Norm); err != nil {
		return err
	}
	if c.DistToken {
		if err := lin("head (timm's, before averaging with head_dist)", m.HeadCLS, c.Classes, d, true); err != nil {
			return err
		}
		if err := lin("head_dist", m.HeadDist, c.Classes, d, true); err != nil {
			return err
		}
	}
	return lin("head", m.Head, c.Classes, d, true)
}
