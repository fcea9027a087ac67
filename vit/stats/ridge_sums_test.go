package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Streaming sums in uneven batches give FitRidge's in-memory solution.
func TestRidgeSumsMatchFitRidge(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	rows, d, k := 300, 7, 5
	x, y := make([]float32, rows*d), make([]float32, rows*k)
	for i := range x {
		x[i] = float32(rng.NormFloat64()*2 + 3) // an offset the centring must remove
	}
	for i := range y {
		y[i] = float32(rng.NormFloat64())
	}
	want, err := FitRidge(x, y, rows, d, k, 0.7, true)
	if err != nil {
		t.Fatal(err)
	}
	s := NewRidgeSums(d, k)
	for lo := 0; lo < rows; lo += 37 {
		hi := min(lo+37, rows)
		s.Add(x[lo*d:hi*d], y[lo*k:hi*k], hi-lo)
	}
	got, err := s.Solve(0.7)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want.W {
		if math.Abs(got.W[i]-want.W[i]) > 1e-9 {
			t.Fatalf("W[%d] = %g, want %g", i, got.W[i], want.W[i])
		}
	}
	for i := range want.Intercept {
		if math.Abs(got.Intercept[i]-want.Intercept[i]) > 1e-9 {
			t.Fatalf("b[%d] = %g, want %g", i, got.Intercept[i], want.Intercept[i])
		}
	}
}
