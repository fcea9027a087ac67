package gpu

import (
	"testing"

	"vitlens/vit"
	"vitlens/vit/activations"
	"vitlens/vit/checkpoint"
	"vitlens/vit/lens"
	"vitlens/vit/vittest"
)

// The halves themselves are activations.Float16's (rounding, tested there)
// and checkpoint.HalfToFloat's (widening, tested on every half there).

// The packed layout is unpack2x16float's: element 2i in the low 16 bits.
func TestPackF16Layout(t *testing.T) {
	p := packF16([]float32{1, 2, -3})
	if len(p) != 2 || p[0] != 0x4000<<16|0x3c00 || p[1] != 0xc200 {
		t.Fatalf("packF16(1, 2, -3) = %#08x", p)
	}
	if got := unpackF16(p, 3); got[0] != 1 || got[1] != 2 || got[2] != -3 {
		t.Fatalf("unpack: %v", got)
	}
}

// F16Weights rounds exactly the matrices, and the measured agreement of a
// model with itself is perfect while f16 weights move some ranks a little.
func TestF16WeightsAndAgreement(t *testing.T) {
	m := vittest.SharpModel(t)
	r := F16Weights(m)
	for _, w := range [][]float32{r.Patch.W, r.Blocks[1].QKV.W, r.Blocks[2].FC2.W, r.Head.W} {
		for _, x := range w {
			if checkpoint.HalfToFloat(activations.Float16(x)) != x {
				t.Fatalf("%g is not a half after F16Weights", x)
			}
		}
	}
	if &r.Blocks[0].Norm1.W[0] != &m.Blocks[0].Norm1.W[0] || r.Blocks[0].QKV.B[0] != m.Blocks[0].QKV.B[0] {
		t.Error("F16Weights changed a vector")
	}
	if r.Blocks[0].FC1.W[0] == m.Blocks[0].FC1.W[0] && r.Blocks[0].FC1.W[1] == m.Blocks[0].FC1.W[1] {
		t.Error("F16Weights left fc1 unrounded")
	}
	images := vit.RandomImages(m.Config, 4, 3)
	req := lens.Request{Sites: vit.AllSites(), TopK: 5}
	cpu := func(m *vit.Model) (lens.Backend, error) { return lens.NewCPU(m), nil }
	a, err := CompareF16(m, cpu, images, req)
	if err != nil {
		t.Fatal(err)
	}
	n := 4 * m.Config.Depth * 4 * m.Config.NumTokens()
	if a.Readouts != n || a.Images != 4 || a.SameRank < n*8/10 || a.MaxLogitDiff > 0.05 || a.MaxLogitDiff == 0 {
		t.Errorf("f16 agreement out of bounds: %+v", a)
	}
	same, err := CompareF16(F16Weights(m), cpu, images, req) // rounding twice changes nothing
	if err != nil {
		t.Fatal(err)
	}
	if same.SameRank != n || same.SameTop1 != n || same.MaxLogitDiff != 0 || same.SamePrediction != 4 {
		t.Errorf("f16 against itself: %+v", same)
	}
	t.Log(a)
}
