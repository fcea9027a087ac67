package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"vitlens/shaders"
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
	for _, w := range [][]float32{r.Patch.Weights(), r.Blocks[1].QKV.Weights(), r.Blocks[2].FC2.Weights(), r.Head.Weights()} {
		for _, x := range w {
			if checkpoint.HalfToFloat(activations.Float16(x)) != x {
				t.Fatalf("%g is not a half after F16Weights", x)
			}
		}
	}
	if &r.Blocks[0].Norm1.W[0] != &m.Blocks[0].Norm1.W[0] || r.Blocks[0].QKV.B[0] != m.Blocks[0].QKV.B[0] {
		t.Error("F16Weights changed a vector")
	}
	if r.Blocks[0].FC1.At(0, 0) == m.Blocks[0].FC1.At(0, 0) && r.Blocks[0].FC1.At(0, 1) == m.Blocks[0].FC1.At(0, 1) {
		t.Error("F16Weights left fc1 unrounded")
	}
	images := vit.RandomImages(m.Config, 4, 3)
	req := lens.Request{Sites: vit.AllSites(), TopK: 5}
	cpu := func(m *vit.Model, f16 bool) (lens.Backend, error) {
		if f16 {
			m = F16Weights(m)
		}
		return lens.NewCPU(m), nil
	}
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

// Each tiled variant's f16 twin, reading packed halves, computes what the
// variant computes on the same weights rounded to f16 and stored as f32: on
// odd shapes (m, n and k off the tiles, n not a multiple of 4) and every
// epilogue, within 1e-6 relative (the arithmetic is the same; measured
// identical on lavapipe).
func TestF16MatmulEqualsF32OnRoundedWeights(t *testing.T) {
	h := testHarness(t)
	for _, v := range tiledMatmuls {
		for _, c := range []string{"BM", "BN", "BK"} {
			if shaderConst(v.kernel+shaders.F16Suffix, c) != shaderConst(v.kernel, c) {
				t.Errorf("%s%s's %s differs from %s's", v.kernel, shaders.F16Suffix, c, v.kernel)
			}
		}
		for _, s := range [][3]int{{1, 1, 4}, {17, 33, 68}, {130, 201, 48}, {257, 131, 36}} {
			m, n, k := s[0], s[1], s[2]
			for _, mode := range []string{"bias", "gelu", "accumulate"} {
				t.Run(fmt.Sprintf("%s/%dx%dx%d/%s", v.kernel, m, n, k, mode), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(5, uint64(m*n*k)))
					a, w, bias, prev := randn(rng, m*k, 1, 0), randn(rng, n*k, 1, 0), randn(rng, n, 1, 0), randn(rng, m*n, 1, 0)
					flags := map[string]uint32{"bias": 0, "gelu": matmulGELU, "accumulate": matmulAccumulate}[mode]
					p := h.prog(t)
					av, bv := h.in(t, p, "a", a), h.in(t, p, "bias", bias)
					w32 := h.in(t, p, "w rounded (k-major)", kMajor(roundF16(w), n, k))
					w32.b.kMajor = true
					w16 := h.inWords(t, p, "w (k-major, f16)", packF16(kMajor(w, n, k)))
					w16.b.kMajor, w16.b.f16 = true, true
					if w16.b.size*2 != w32.b.size {
						t.Fatalf("packed weights take %d bytes, f32 %d", w16.b.size, w32.b.size)
					}
					var outs []view
					for _, wv := range []view{w32, w16} {
						out := h.in(t, p, "out", prev)
						if err := p.matmulWith("matmul", v.kernel, out, av, wv, &bv, m, n, k, flags); err != nil {
							t.Fatal(err)
						}
						outs = append(outs, out)
					}
					if got := p.steps[len(p.steps)-1].k.name; got != v.kernel+shaders.F16Suffix {
						t.Fatalf("packed weights ran on %s", got)
					}
					raw := h.exec(t, p, outs, []int{m * n, m * n})
					want, got := bytesF32(raw[0]), bytesF32(raw[1])
					worst := 0.0
					for i := range want {
						worst = math.Max(worst, math.Abs(float64(got[i]-want[i]))/math.Max(math.Abs(float64(want[i])), 1e-6))
					}
					if worst > 1e-6 {
						t.Errorf("f16 twin vs f32 on rounded weights: max relative difference %.2e", worst)
					} else if worst != 0 {
						t.Logf("max relative difference %.2e", worst)
					}
				})
			}
		}
	}
}

// The backend with f16 weights computes the CPU forward and lens of
// F16Weights(m), and stores the tiled matmuls' weights in half the bytes.
// cfgOdd's fc2 (k = 33) and patch embedding (k = 75) take the simple matmul,
// whose weights stay f32 (rounded).
func TestBackendF16WeightsMatchesCPU(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    vit.Config
	}{{"cls_prenorm", cfgCLS}, {"odd_mean_with_cls", cfgOdd}} {
		t.Run(tc.name, func(t *testing.T) {
			m := randomModel(t, tc.c, 11)
			b32 := newBackend(t, m)
			b16, err := New(m, Options{F16Weights: true})
			if err != nil {
				t.Fatal(err)
			}
			defer b16.Close()
			packed := 0
			for _, w := range b16.w.all {
				if w.f16 {
					packed++
				}
			}
			if packed == 0 || b16.WeightBytes() >= b32.WeightBytes() {
				t.Fatalf("f16 weights: %d packed buffers, %d bytes against f32's %d", packed, b16.WeightBytes(), b32.WeightBytes())
			}
			t.Logf("weights: %d bytes f16, %d f32 (%d buffers packed)", b16.WeightBytes(), b32.WeightBytes(), packed)
			images := vit.RandomImages(tc.c, 3, 2)
			req := lens.Request{Sites: vit.AllSites(), TopK: 5, Targets: []int{1, -1, 0}, Taps: allTaps()}
			got, err := b16.Analyze(images, req)
			if err != nil {
				t.Fatal(err)
			}
			compareResults(t, F16Weights(m), images, req, got)
		})
	}
}
