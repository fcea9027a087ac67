package gpu

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"vitlens/vit"
	"vitlens/vit/lens"
	"vitlens/vit/vittest"
)

// f16Reference decodes a half from its fields, independently of f16Value:
// normal halves by placing the fields in a float32, subnormals in float64.
func f16Reference(h uint16) float64 {
	sign, exp, mant := uint32(h>>15), uint32(h>>10)&0x1f, uint32(h)&0x3ff
	switch exp {
	case 0:
		return math.Copysign(float64(mant)*math.Pow(2, -24), -float64(sign)*2+1)
	case 0x1f:
		if mant != 0 {
			return math.NaN()
		}
		return math.Inf(1 - 2*int(sign))
	}
	return float64(math.Float32frombits(sign<<31 | (exp-15+127)<<23 | mant<<13))
}

func TestF16DecodeEveryHalf(t *testing.T) {
	for h := range 1 << 16 {
		got, want := float64(f16Value(uint16(h))), f16Reference(uint16(h))
		if got != want && !(math.IsNaN(got) && math.IsNaN(want)) || math.Signbit(got) != math.Signbit(want) && !math.IsNaN(want) {
			t.Fatalf("half %#04x: %g, want %g", h, got, want)
		}
	}
}

// Encoding: every half round-trips; a float32 halfway between two
// neighbours goes to the even one and one ulp either side to the nearer;
// random float32 values match a brute-force nearest search (ties to even,
// overflow to infinity from 65520 up, as IEEE 754 rounds).
func TestF16EncodeRoundsToNearestEven(t *testing.T) {
	var pos []uint16 // finite non-negative halves in increasing order
	for h := range 0x7c00 {
		pos = append(pos, uint16(h))
	}
	for h := range 1 << 16 {
		if h&0x7fff >= 0x7c01 {
			if got := f16Bits(f16Value(uint16(h))); got&0x7fff <= 0x7c00 {
				t.Fatalf("NaN %#04x encoded as %#04x", h, got)
			}
			continue
		}
		if got := f16Bits(f16Value(uint16(h))); got != uint16(h) {
			t.Fatalf("half %#04x round-trips to %#04x", h, got)
		}
	}
	for i := 0; i+1 < len(pos); i++ {
		lo, hi := pos[i], pos[i+1]
		mid := float32((float64(f16Value(lo)) + float64(f16Value(hi))) / 2) // exact: 12 significant bits
		even := lo
		if lo&1 == 1 {
			even = hi
		}
		if got := f16Bits(mid); got != even {
			t.Fatalf("midpoint %g between %#04x and %#04x: %#04x, want %#04x", mid, lo, hi, got, even)
		}
		if got := f16Bits(math.Nextafter32(mid, 0)); got != lo {
			t.Fatalf("just below %g: %#04x, want %#04x", mid, got, lo)
		}
		if got := f16Bits(math.Nextafter32(mid, float32(math.Inf(1)))); got != hi {
			t.Fatalf("just above %g: %#04x, want %#04x", mid, got, hi)
		}
	}
	for _, c := range []struct {
		x    float32
		want uint16
	}{{65519.996, 0x7bff}, {65520, 0x7c00}, {1e6, 0x7c00}, {-1e6, 0xfc00}, {1e-10, 0}, {-1e-10, 0x8000}, {2.98e-8, 0x0000}, {2.99e-8, 0x0001}} {
		if got := f16Bits(c.x); got != c.want {
			t.Errorf("f16Bits(%g) = %#04x, want %#04x", c.x, got, c.want)
		}
	}
	nearest := func(x float64) uint16 {
		a := math.Abs(x)
		i := sort.Search(len(pos), func(i int) bool { return float64(f16Value(pos[i])) >= a })
		var h uint16
		switch {
		case i == len(pos): // above 65504: to 65504 below the 65520 midpoint, else infinity
			h = 0x7bff
			if a >= 65520 {
				h = 0x7c00
			}
		case i == 0:
			h = pos[0]
		default:
			lo, hi := pos[i-1], pos[i]
			dl, dh := a-float64(f16Value(lo)), float64(f16Value(hi))-a
			h = hi
			if dl < dh || dl == dh && lo&1 == 0 {
				h = lo
			}
		}
		if x < 0 {
			h |= 0x8000
		}
		return h
	}
	rng := rand.New(rand.NewPCG(1, 16))
	for range 200000 {
		// Exponents around the half range, where all the cases are.
		x := float32(math.Ldexp(rng.Float64()*2-1, rng.IntN(44)-28))
		if got, want := f16Bits(x), nearest(float64(x)); got != want {
			t.Fatalf("f16Bits(%g) = %#04x, nearest is %#04x", x, got, want)
		}
	}
}

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
			if f16Value(f16Bits(x)) != x {
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
