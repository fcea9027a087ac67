package gpu

import (
	"fmt"
	"math"
	"strings"

	"vitlens/vit"
	"vitlens/vit/activations"
	"vitlens/vit/checkpoint"
	"vitlens/vit/lens"
)

// Half-precision weights, measured before they are stored.
//
// The bundled WGSL compiler (naga in wgpu-native, cogentcore/webgpu v0.23.0)
// rejects `enable f16;` even on adapters that advertise shader-f16 (lavapipe
// does), so f16 storage natively means packing two halves per u32 and
// unpacking them with core WGSL's unpack2x16float, which needs no feature:
// f16 storage, f32 arithmetic. Its numerics are exactly those of f32 kernels
// reading weights rounded to f16, which is what F16Agreement measures; the
// packed loads themselves belong in the matmul kernel.

// packF16 packs v two halves per 32-bit word (rounded as activations.Float16
// rounds: to nearest, ties to even), element 2i in the low half:
// the layout unpack2x16float reads (its .x is the low 16 bits). An odd
// length is padded with +0.
func packF16(v []float32) []uint32 {
	out := make([]uint32, (len(v)+1)/2)
	for i, x := range v {
		out[i/2] |= uint32(activations.Float16(x)) << (16 * (i % 2))
	}
	return out
}

// unpackF16 is unpack2x16float over a packed slice: n float32 values.
func unpackF16(p []uint32, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = checkpoint.HalfToFloat(uint16(p[i/2] >> (16 * (i % 2))))
	}
	return out
}

func roundF16(v []float32) []float32 {
	if v == nil {
		return nil
	}
	return unpackF16(packF16(v), len(v))
}

func roundLinear(l vit.Linear) vit.Linear {
	return vit.Linear{In: l.In, Out: l.Out, W: roundF16(l.Weights()), B: l.B}
}

// F16Weights returns m with every matrix a matmul or the lens reads (patch
// embedding, qkv, proj, fc1, fc2, the heads) rounded to f16: the weights f16
// storage would hold. Vectors (biases, norms, tokens, positions) stay f32.
func F16Weights(m *vit.Model) *vit.Model {
	r := &vit.Model{Config: m.Config, Patch: roundLinear(m.Patch), ClsToken: m.ClsToken, DistToken: m.DistToken,
		RegTokens: m.RegTokens, PosEmbed: m.PosEmbed, NormPre: m.NormPre, Norm: m.Norm,
		Head: roundLinear(m.Head), HeadCLS: roundLinear(m.HeadCLS), HeadDist: roundLinear(m.HeadDist)}
	for _, b := range m.Blocks {
		b.QKV, b.Proj, b.FC1, b.FC2 = roundLinear(b.QKV), roundLinear(b.Proj), roundLinear(b.FC1), roundLinear(b.FC2)
		r.Blocks = append(r.Blocks, b)
	}
	r.Pack()
	return r
}

// F16Agreement compares the lens with f16 weights against f32 weights, both
// on one backend kind, over the same images and request.
type F16Agreement struct {
	Images, Readouts int // readouts: token × block × site entries
	SameRank         int // entries whose target rank is identical
	SameTop1         int // entries whose top class is identical
	SumAbsRank       int64
	MaxAbsRank       int
	SamePrediction   int     // images whose predicted class is identical
	MaxLogitDiff     float64 // largest |Δ| of the model's logits
	// WeightBytes and WeightBytesF16: the weights' GPU memory of the two
	// backends, when they report it (0 otherwise, as on the CPU).
	WeightBytes, WeightBytesF16 int64
}

func (a F16Agreement) String() string {
	pct := func(n, of int) float64 { return 100 * float64(n) / float64(max(of, 1)) }
	return fmt.Sprintf("f16 weights vs f32 on %d images: target rank identical in %.2f%% of %d readouts (mean |Δrank| %.3f, max %d), top-1 class identical in %.2f%%; predictions identical %d/%d; logits within %.3g",
		a.Images, pct(a.SameRank, a.Readouts), a.Readouts, float64(a.SumAbsRank)/float64(max(a.Readouts, 1)), a.MaxAbsRank,
		pct(a.SameTop1, a.Readouts), a.SamePrediction, a.Images, a.MaxLogitDiff) + a.memory()
}

func (a F16Agreement) memory() string {
	if a.WeightBytes == 0 || a.WeightBytesF16 == 0 {
		return ""
	}
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	return fmt.Sprintf("; weights on the GPU %.1f MiB with f16 storage vs %.1f MiB f32 (%.0f%%)",
		mib(a.WeightBytesF16), mib(a.WeightBytes), 100*float64(a.WeightBytesF16)/float64(a.WeightBytes))
}

// CompareF16 runs req on images through a backend of m with f32 weights
// (open(m, false)) and one with f16 weights (open(m, true): the GPU with
// Options.F16Weights, or any backend of F16Weights(m)), and measures how far
// the f16 results are from the f32 ones.
func CompareF16(m *vit.Model, open func(m *vit.Model, f16 bool) (lens.Backend, error), images []*vit.Tensor, req lens.Request) (F16Agreement, error) {
	run := func(f16 bool) ([]*lens.Result, int64, error) {
		b, err := open(m, f16)
		if err != nil {
			return nil, 0, err
		}
		defer b.Close()
		var bytes int64
		if w, ok := b.(interface{ WeightBytes() int64 }); ok {
			bytes = w.WeightBytes()
		}
		res, err := b.Analyze(images, req)
		return res, bytes, err
	}
	want, bytes, err := run(false)
	if err != nil {
		return F16Agreement{}, err
	}
	got, bytesF16, err := run(true)
	if err != nil {
		return F16Agreement{}, err
	}
	a := agreement(want, got)
	a.WeightBytes, a.WeightBytesF16 = bytes, bytesF16
	return a, nil
}

func agreement(want, got []*lens.Result) F16Agreement {
	a := F16Agreement{Images: len(want)}
	for i := range want {
		w, g := want[i], got[i]
		if lens.Argmax(w.Logits) == lens.Argmax(g.Logits) {
			a.SamePrediction++
		}
		for j := range w.Logits {
			a.MaxLogitDiff = math.Max(a.MaxLogitDiff, math.Abs(float64(w.Logits[j]-g.Logits[j])))
		}
		for r := range w.Readouts {
			wr, gr := w.Readouts[r], g.Readouts[r]
			for t := range wr.Rank {
				a.Readouts++
				d := int(wr.Rank[t] - gr.Rank[t])
				if d < 0 {
					d = -d
				}
				if d == 0 {
					a.SameRank++
				}
				a.SumAbsRank += int64(d)
				a.MaxAbsRank = max(a.MaxAbsRank, d)
				if wr.TopOf(t)[0] == gr.TopOf(t)[0] {
					a.SameTop1++
				}
			}
		}
	}
	return a
}

// ShaderF16Notice says whether the adapter advertises shader-f16 and why f16
// storage does not need it here (see the comment at the top of this file).
func ShaderF16Notice() string {
	d, err := openDevice()
	if err != nil {
		return "shader-f16: no adapter (" + err.Error() + ")"
	}
	defer d.release()
	has := "does not advertise"
	if d.shaderF16 {
		has = "advertises"
	}
	return strings.Join([]string{"adapter " + has + " shader-f16;",
		"the bundled WGSL compiler rejects `enable f16;`, so f16 storage packs halves in u32 words (unpack2x16float, core WGSL, no feature needed)"}, " ")
}
