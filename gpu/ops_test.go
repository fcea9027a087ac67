package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"vitlens/vit"
)

func randn(rng *rand.Rand, n int, scale, offset float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64()*scale + offset)
	}
	return v
}

// Matmul with each epilogue against vit.LinearForward (+ vit.GELU, + vit.Add).
func TestKernelMatMul(t *testing.T) {
	h := testHarness(t)
	rng := rand.New(rand.NewPCG(1, 1))
	shapes := [][3]int{{1, 1, 1}, {3, 5, 7}, {17, 33, 65}, {50, 96, 128}, {197, 70, 64}, {64, 64, 16}, {130, 200, 48}}
	for _, s := range shapes {
		for _, mode := range []string{"bias", "nobias", "gelu", "accumulate"} {
			m, n, k := s[0], s[1], s[2]
			t.Run(fmt.Sprintf("%dx%dx%d/%s", m, n, k, mode), func(t *testing.T) {
				a, w := randn(rng, m*k, 1, 0), randn(rng, n*k, 1, 0)
				l := vit.Linear{In: k, Out: n, W: w}
				if mode != "nobias" {
					l.B = randn(rng, n, 1, 0)
				}
				prev := randn(rng, m*n, 1, 0)
				want := make([]float32, m*n)
				vit.LinearForward(want, a, m, l)
				var flags uint32
				switch mode {
				case "gelu":
					vit.GELUExact(want) // vit.GELU is a float32 approximation of it
					flags = matmulGELU
				case "accumulate":
					sum := append([]float32(nil), prev...)
					vit.Add(sum, want)
					want = sum
					flags = matmulAccumulate
				}
				p := h.prog(t)
				out := h.in(t, p, "out", prev)
				var bias *view
				if l.B != nil {
					v := h.in(t, p, "bias", l.B)
					bias = &v
				}
				if err := p.matmul("matmul", out, h.in(t, p, "a", a), h.in(t, p, "w", w), bias, m, n, k, flags); err != nil {
					t.Fatal(err)
				}
				got := bytesF32(h.exec(t, p, []view{out}, []int{m * n})[0])
				nmse, maxAbs := errStats(got, want)
				t.Logf("nmse %.2e max-abs %.2e", nmse, maxAbs)
				if nmse > 1e-11 || maxAbs > 1e-4 {
					t.Errorf("nmse %.2e max-abs %.2e over bound (1e-11, 1e-4)", nmse, maxAbs)
				}
			})
		}
	}
}

func TestKernelLayerNorm(t *testing.T) {
	h := testHarness(t)
	rng := rand.New(rand.NewPCG(2, 2))
	for _, s := range [][2]int{{1, 1}, {1, 7}, {17, 33}, {50, 96}, {197, 64}, {3, 768}} {
		rows, d := s[0], s[1]
		t.Run(fmt.Sprintf("%dx%d", rows, d), func(t *testing.T) {
			x := randn(rng, rows*d, 2, 3) // an offset mean exercises the two-pass variance
			n := vit.Norm{W: randn(rng, d, 0.3, 1), B: randn(rng, d, 0.3, 0)}
			want := make([]float32, rows*d)
			vit.LayerNorm(want, x, rows, d, n, 1e-6)
			p := h.prog(t)
			out := h.out(t, p, "out", rows*d)
			if err := p.layerNorm("ln", out, h.in(t, p, "x", x), h.in(t, p, "w", n.W), h.in(t, p, "b", n.B), rows, d, 1e-6); err != nil {
				t.Fatal(err)
			}
			got := bytesF32(h.exec(t, p, []view{out}, []int{rows * d})[0])
			nmse, maxAbs := errStats(got, want)
			t.Logf("nmse %.2e max-abs %.2e", nmse, maxAbs)
			if nmse > 1e-12 || maxAbs > 1e-5 {
				t.Errorf("nmse %.2e max-abs %.2e over bound (1e-12, 1e-5)", nmse, maxAbs)
			}
		})
	}
}

func TestKernelAdd(t *testing.T) {
	h := testHarness(t)
	rng := rand.New(rand.NewPCG(3, 3))
	for _, n := range []int{1, 255, 256, 257, 70001} {
		dst, src := randn(rng, n, 1, 0), randn(rng, n, 1, 0)
		want := append([]float32(nil), dst...)
		vit.Add(want, src)
		p := h.prog(t)
		d := h.in(t, p, "dst", dst)
		if err := p.add("add", d, h.in(t, p, "src", src), n); err != nil {
			t.Fatal(err)
		}
		got := bytesF32(h.exec(t, p, []view{d}, []int{n})[0])
		if _, maxAbs := errStats(got, want); maxAbs != 0 {
			t.Errorf("n=%d: max-abs %.2e, want exact", n, maxAbs)
		}
	}
}

// The float32 erf, erfc and GELU of erf.wgsl against math.Erf/Erfc and
// vit.GELUExact (float64) on a dense grid plus the tails.
func TestKernelErfGELU(t *testing.T) {
	h := testHarness(t)
	var x []float32
	for v := -12.0; v <= 12.0; v += 1.0 / 512 {
		x = append(x, float32(v))
	}
	x = append(x, 0, 1e-30, -1e-30, 1e-8, -1e-8, 3e-5, -3e-5, 0.84375, -0.84375, 1.25, 2.857, 6, 27.9, 40, -40, 100, -100)
	run := func(mode uint32) []float32 {
		p := h.prog(t)
		v := h.in(t, p, "x", x)
		if err := p.unary("unary", v, len(x), mode); err != nil {
			t.Fatal(err)
		}
		return bytesF32(h.exec(t, p, []view{v}, []int{len(x)})[0])
	}
	// relErr is |got−want| relative to |want|, with an absolute floor so
	// values that underflow float32 compare absolutely.
	relErr := func(got float32, want, floor float64) float64 {
		return math.Abs(float64(got)-want) / math.Max(math.Abs(want), floor)
	}
	for _, tc := range []struct {
		name  string
		mode  uint32
		ref   func(float64) float64
		floor float64
		bound float64
	}{
		// erf is accurate to about one float32 ulp.
		{"erf", unaryErf, math.Erf, 1e-30, 4e-7},
		// erfc's relative error grows in the far tail with WGSL's exp
		// (allowed 3+2|x| ulp): ~7e-6 at erfc(8) = 1e-29, harmless for GELU.
		{"erfc", unaryErfc, math.Erfc, 1e-30, 2e-5},
		{"gelu", unaryGELU, func(v float64) float64 {
			g := []float32{float32(v)}
			vit.GELUExact(g)
			return float64(g[0])
		}, 1e-6, 5e-6}, // relative above |GELU| = 1e-6; GELUExact rounds to -0 below x≈-5.9
	} {
		got := run(tc.mode)
		worst, at := 0.0, 0
		for i, v := range x {
			if e := relErr(got[i], tc.ref(float64(v)), tc.floor); e > worst || math.IsNaN(e) {
				worst, at = e, i
			}
		}
		t.Logf("%s: max relative error %.2e at x=%g", tc.name, worst, x[at])
		if !(worst <= tc.bound) {
			t.Errorf("%s: max relative error %.2e at x=%g (got %g, want %g) over %.0e", tc.name, worst, x[at], got[at], tc.ref(float64(x[at])), tc.bound)
		}
	}
}
