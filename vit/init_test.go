package vit

import (
	"math"
	"slices"
	"testing"
)

// NewRandom follows timm 0.6.12's initialisation and is reproducible by seed.
func TestNewRandomLikeTimm(t *testing.T) {
	c := Config{ImageSize: 32, PatchSize: 8, Channels: 3, Dim: 64, Depth: 2, Heads: 4, MLPDim: 256, Classes: 100,
		QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: PoolCLS}
	m, err := NewRandom(c, 3)
	if err != nil {
		t.Fatal(err)
	}
	std := func(v []float32) float64 {
		var s, s2 float64
		for _, x := range v {
			s += float64(x)
			s2 += float64(x) * float64(x)
		}
		n := float64(len(v))
		return math.Sqrt(s2/n - (s/n)*(s/n))
	}
	for name, w := range map[string][]float32{"qkv": m.Blocks[0].QKV.Weights(), "fc1": m.Blocks[1].FC1.Weights(), "head": m.Head.Weights(), "pos_embed": m.PosEmbed} {
		if s := std(w); math.Abs(s-0.02) > 0.002 {
			t.Errorf("%s std %.4f, want 0.02", name, s)
		}
	}
	if s := std(m.ClsToken); s > 1e-5 {
		t.Errorf("cls_token std %g, want ~1e-6", s)
	}
	// PyTorch's conv default: uniform(±1/√fan_in).
	bound := 1 / math.Sqrt(float64(3*8*8))
	for _, x := range m.Patch.Weights() {
		if math.Abs(float64(x)) > bound {
			t.Fatalf("patch weight %g beyond ±%g", x, bound)
		}
	}
	for _, b := range [][]float32{m.Blocks[0].QKV.B, m.Blocks[0].FC2.B, m.Head.B} {
		if slices.ContainsFunc(b, func(x float32) bool { return x != 0 }) {
			t.Fatal("linear biases must start at zero")
		}
	}
	if m.Blocks[0].Norm1.W[0] != 1 || m.Norm.B[0] != 0 {
		t.Fatal("LayerNorms must start at (1, 0)")
	}
	again, _ := NewRandom(c, 3)
	other, _ := NewRandom(c, 4)
	if !slices.Equal(m.Blocks[1].FC2.Weights(), again.Blocks[1].FC2.Weights()) || slices.Equal(m.Blocks[1].FC2.Weights(), other.Blocks[1].FC2.Weights()) {
		t.Fatal("the same seed must give the same model, another seed another")
	}
	gap := c
	gap.ClassToken, gap.Pool, gap.PostNorm, gap.QKVBias = false, PoolMean, true, false
	g, err := NewRandom(gap, 1)
	if err != nil {
		t.Fatal(err)
	}
	if g.Blocks[0].Norm1.W[0] != 1e-5 || g.Blocks[1].Norm2.W[5] != 1e-5 || g.Norm.W[0] != 1 || g.Blocks[0].QKV.B != nil {
		t.Fatal("post-norm blocks start their norms at 1e-5 (timm ResPostBlock), fc_norm at 1, no qkv bias")
	}
}
