//go:build js && !purego

package explain

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"vitlens/vit"
)

// The threaded module's attention backward (vit.AttentionBackwardHeads)
// against attentionBackwardLoop, bit for bit: the same products on the same
// operands and softmax' in the same float64 order. Odd sizes (no whole GEMM
// tile, dh not a multiple of 4) and B/16's; with and without ∂L/∂qkv.
func TestAttentionBackwardKernelMatchesLoop(t *testing.T) {
	if !vit.AttentionBackwardKernel() {
		t.Skip("no threaded module here (make wasm-check runs this with node_threads_exec)")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, sz := range []struct{ n, heads, dh int }{{5, 2, 3}, {37, 3, 24}, {50, 4, 16}, {197, 12, 64}} {
		D := sz.heads * sz.dh
		qkv, probs, gHeads := attentionCase(rng, sz.n, sz.heads, sz.dh)
		scale := float32(1 / math.Sqrt(float64(sz.dh)))
		for _, withQKV := range []bool{true, false} {
			var gotQKV, wantQKV []float32
			if withQKV {
				gotQKV, wantQKV = randVec(rng, sz.n*3*D, 1), make([]float32, sz.n*3*D) // stale values must be overwritten
			}
			gotP, wantP := make([]float32, sz.heads*sz.n*sz.n), make([]float32, sz.heads*sz.n*sz.n)
			if !vit.AttentionBackwardHeads(gotP, gotQKV, qkv, probs.Data, gHeads, sz.n, sz.heads, sz.dh, scale) {
				t.Fatal("the kernel did not run")
			}
			attentionBackwardLoop(wantP, qkv, probs, gHeads, sz.n, sz.heads, sz.dh, scale, wantQKV)
			if !slices.Equal(gotP, wantP) || !slices.Equal(gotQKV, wantQKV) {
				t.Errorf("n %d, heads %d, dh %d, ∂L/∂qkv %v: the module's attention backward differs from Go's loop",
					sz.n, sz.heads, sz.dh, withQKV)
			}
		}
	}
}

// The threaded module's rollout rows (vit.RolloutRows) against rolloutRow,
// bit for bit, on the gradients and probabilities of a real backward (half
// of the products negative) and an odd size; and chefer's map with the
// kernel against chefer's without.
func TestRolloutRowsKernelMatchesLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, sz := range []struct{ n, heads int }{{5, 2}, {37, 3}, {197, 12}} {
		ga, a := randVec(rng, sz.heads*sz.n*sz.n, 1), randVec(rng, sz.heads*sz.n*sz.n, 1)
		got := make([]float64, sz.n*sz.n)
		if !vit.RolloutRows(got, ga, a, sz.n, sz.heads) {
			t.Skip("no threaded module here (make wasm-check runs this with node_threads_exec)")
		}
		for k := range sz.n {
			want := make([]float64, sz.n)
			rolloutRow(want, ga, a, k, sz.n, sz.heads)
			if !slices.Equal(got[k*sz.n:(k+1)*sz.n], want) {
				t.Fatalf("n %d, %d heads: row %d differs from Go's loop", sz.n, sz.heads, k)
			}
		}
	}
	for _, name := range goldenFixtures {
		m, g := loadFixture(t, name)
		inputs, targets := goldenInputs(t, g)
		tp, err := record(m, inputs[0])
		if err != nil {
			t.Fatal(err)
		}
		got := chefer(tp, targets[0])
		saved := rolloutRowsKernel
		rolloutRowsKernel = nil
		want := chefer(tp, targets[0])
		rolloutRowsKernel = saved
		if !slices.Equal(got, want) {
			t.Errorf("%s: chefer's map with the rollout kernel differs from Go's", name)
		}
	}
}

// The threaded module's LayerNorm backward (vit.LayerNormBackwardRows)
// against layerNormBackwardLoop, bit for bit: NormStats' four partial sums
// and the loop's float64 order. Widths not a multiple of 4 and B/16's,
// rows of varied scale and offset (the statistics matter), in place (gx
// is gy, as the backward calls it) and not.
func TestLayerNormBackwardKernelMatchesLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, sz := range []struct{ rows, d int }{{1, 5}, {13, 37}, {40, 64}, {197, 768}} {
		x, gy := randVec(rng, sz.rows*sz.d, 3), randVec(rng, sz.rows*sz.d, 1)
		for r := range sz.rows {
			for i := range sz.d {
				x[r*sz.d+i] += float32(r) - 5
			}
		}
		n := vit.Norm{W: randVec(rng, sz.d, 1)}
		want := make([]float32, sz.rows*sz.d)
		layerNormBackwardLoop(want, gy, x, sz.rows, sz.d, n, 1e-6)
		got := randVec(rng, sz.rows*sz.d, 1) // stale values must be overwritten
		if !vit.LayerNormBackwardRows(got, gy, x, n.W, sz.rows, sz.d, 1e-6) {
			t.Skip("no threaded module here (make wasm-check runs this with node_threads_exec)")
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%d rows of %d: the module's LayerNorm backward differs from Go's loop", sz.rows, sz.d)
		}
		inPlace := slices.Clone(gy)
		vit.LayerNormBackwardRows(inPlace, inPlace, x, n.W, sz.rows, sz.d, 1e-6)
		if !slices.Equal(inPlace, want) {
			t.Fatalf("%d rows of %d: the module's LayerNorm backward in place differs from Go's loop", sz.rows, sz.d)
		}
	}
}
