package activations

import (
	"math"
	"math/rand/v2"
	"testing"

	"vitlens/vit"
)

// half decodes a binary16 value by its definition (the slow twin of the
// checkpoint loader's table-free widening).
func half(h uint16) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e, m := int(h>>10&0x1f), float64(h&0x3ff)
	switch e {
	case 0:
		return s * m * math.Pow(2, -24)
	case 31:
		if m != 0 {
			return math.NaN()
		}
		return s * math.Inf(1)
	}
	return s * (1 + m/1024) * math.Pow(2, float64(e-15))
}

// Float16 is the nearest binary16 value, ties to the even one: checked
// against a search over all 65536 codes for values across the whole range.
func TestFloat16RoundsToNearestEven(t *testing.T) {
	finite := make([]uint16, 0, 65536)
	for h := 0; h < 65536; h++ {
		if v := half(uint16(h)); !math.IsNaN(v) && !math.IsInf(v, 0) {
			finite = append(finite, uint16(h))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	xs := []float32{0, 65504, -65504, 65519, 65520, 6e-8, 2.98e-8, 2.99e-8, 1, 1.0009765, 1.00048828125, 1.00146484375}
	for i := 0; i < 300; i++ {
		xs = append(xs, float32(math.Ldexp(r.Float64()*2-1, r.IntN(44)-26)))
	}
	for _, x := range xs {
		got := Float16(x)
		if math.Abs(float64(x)) >= 65520 {
			if !math.IsInf(half(got), 0) {
				t.Errorf("%g: %#04x, want Inf", x, got)
			}
			continue
		}
		best, bestErr := uint16(0), math.Inf(1)
		for _, h := range finite {
			e := math.Abs(half(h) - float64(x))
			if e < bestErr || e == bestErr && h&1 == 0 && best&1 == 1 && half(h) != half(best) {
				best, bestErr = h, e
			}
		}
		if half(got) != half(best) {
			t.Errorf("%g: %#04x (%g), nearest %#04x (%g)", x, got, half(got), best, half(best))
		}
	}
	if !math.IsNaN(half(Float16(float32(math.NaN())))) || !math.IsInf(half(Float16(float32(math.Inf(-1)))), -1) {
		t.Error("NaN or -Inf not kept")
	}
}

func TestSelectTokens(t *testing.T) {
	act := vit.NewTensor(2, 3, 3) // pattern: H=2, n=3
	for i := range act.Data {
		act.Data[i] = float32(i)
	}
	got := Select(vit.Hook{Point: vit.HookPattern}, act, []int{0, 2})
	want := []float32{0, 1, 2, 6, 7, 8, 9, 10, 11, 15, 16, 17}
	for i, v := range want {
		if got.Data[i] != v {
			t.Fatalf("pattern rows: %v, want %v", got.Data, want)
		}
	}
	res := Select(vit.Hook{Point: vit.HookZ}, vit.NewTensor(3, 2, 4), []int{1})
	if res.Shape[0] != 1 || res.Shape[1] != 2 || res.Shape[2] != 4 {
		t.Errorf("z shape %v", res.Shape)
	}
}
