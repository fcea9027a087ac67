package vit

import (
	"math"
	"math/rand/v2"
)

// NewRandom builds a model of the given architecture with timm 0.6.12's
// default initialisation, seeded, for the paper's random-model baselines:
// Linear weights trunc-normal(0.02) with zero bias, pos_embed trunc-normal(0.02),
// cls_token normal(1e-6), LayerNorms (1, 0) except the post-norm block norms
// whose weights start at 1e-5, and the patch conv with PyTorch's default
// kaiming-uniform(a=√5) (timm leaves the conv to PyTorch). The model comes
// packed (Model.Pack): read its Linear weights through Linear.Weights.
func NewRandom(c Config, seed uint64) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x766974_6c656e73)) // "vitlens"
	d := c.Dim
	truncNormal := func(n int, std float64) []float32 {
		// timm's trunc_normal_ cuts at ±2 absolute, i.e. ±100σ for σ=0.02:
		// resampling is practically never needed but kept for fidelity.
		v := make([]float32, n)
		for i := range v {
			for {
				x := rng.NormFloat64() * std
				if x >= -2 && x <= 2 {
					v[i] = float32(x)
					break
				}
			}
		}
		return v
	}
	linear := func(out, in int, bias bool) Linear {
		l := Linear{In: in, Out: out, W: truncNormal(out*in, 0.02)}
		if bias {
			l.B = make([]float32, out)
		}
		return l
	}
	norm := func(w float32) Norm {
		n := Norm{W: make([]float32, d), B: make([]float32, d)}
		for i := range n.W {
			n.W[i] = w
		}
		return n
	}
	m := &Model{Config: c}
	fanIn := c.Channels * c.PatchSize * c.PatchSize
	bound := 1 / math.Sqrt(float64(fanIn))
	m.Patch = Linear{In: fanIn, Out: d, W: make([]float32, d*fanIn), B: make([]float32, d)}
	for i := range m.Patch.W {
		m.Patch.W[i] = float32((rng.Float64()*2 - 1) * bound)
	}
	for i := range m.Patch.B {
		m.Patch.B[i] = float32((rng.Float64()*2 - 1) * bound)
	}
	if c.ClassToken {
		m.ClsToken = make([]float32, d)
		for i := range m.ClsToken {
			m.ClsToken[i] = float32(rng.NormFloat64() * 1e-6)
		}
	}
	if c.DistToken { // timm VisionTransformerDistilled: trunc_normal(0.02)
		m.DistToken = truncNormal(d, 0.02)
	}
	if c.Registers > 0 { // timm: normal(std 1e-6), as cls_token
		m.RegTokens = make([]float32, c.Registers*d)
		for i := range m.RegTokens {
			m.RegTokens[i] = float32(rng.NormFloat64() * 1e-6)
		}
	}
	m.PosEmbed = truncNormal(c.NumTokens()*d, 0.02)
	if c.NormPre {
		m.NormPre = norm(1)
	}
	blockNorm := float32(1)
	if c.PostNorm {
		blockNorm = 1e-5
	}
	for range c.Depth {
		m.Blocks = append(m.Blocks, Block{
			Norm1: norm(blockNorm),
			QKV:   linear(3*d, d, c.QKVBias),
			Proj:  linear(d, d, true),
			Norm2: norm(blockNorm),
			FC1:   linear(c.MLPDim, d, true),
			FC2:   linear(d, c.MLPDim, true),
		})
	}
	m.Norm = norm(1)
	m.Head = linear(c.Classes, d, true)
	if c.DistToken {
		m.HeadCLS, m.HeadDist = m.Head, linear(c.Classes, d, true)
		m.Head = MeanHead(m.HeadCLS, m.HeadDist)
	}
	if err := m.CheckShapes(); err != nil {
		return nil, err
	}
	m.Pack()
	return m, nil
}

// RandomImages returns n model-sized images of N(0, 1) pixels from seed, for
// the tests and benchmarks that need inputs but no dataset.
func RandomImages(c Config, n int, seed uint64) []*Tensor {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]*Tensor, n)
	for i := range out {
		out[i] = NewTensor(c.Channels, c.ImageSize, c.ImageSize)
		for j := range out[i].Data {
			out[i].Data[j] = float32(rng.NormFloat64())
		}
	}
	return out
}
