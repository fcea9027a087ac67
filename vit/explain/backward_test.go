package explain

// Each backward op against central finite differences of its forward op,
// with L = ⟨w, f(x)⟩ for a random w: small enough to localise a mistake that
// the end-to-end autograd comparison would only report as "wrong".

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"vitlens/vit"
)

func randVec(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

// checkVJP compares the analytic gradient of L(x) = ⟨w, f(x)⟩ with central
// differences.
func checkVJP(t *testing.T, name string, x []float32, f func(x []float32) []float32, grad []float32, w []float32) {
	t.Helper()
	const h = 1e-2
	loss := func(x []float32) float64 { return dot64(w, f(x)) }
	for i := range x {
		xp, xm := slices.Clone(x), slices.Clone(x)
		xp[i] += h
		xm[i] -= h
		num := (loss(xp) - loss(xm)) / (2 * h)
		if d := math.Abs(num - float64(grad[i])); d > 2e-3*math.Max(1, math.Abs(num)) {
			t.Errorf("%s: ∂L/∂x[%d] = %g, finite differences %g", name, i, grad[i], num)
			return
		}
	}
}

func TestBackwardOpsMatchFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const rows, d = 3, 7
	t.Run("layernorm", func(t *testing.T) {
		n := vit.Norm{W: randVec(rng, d, 1), B: randVec(rng, d, 1)}
		x, w := randVec(rng, rows*d, 2), randVec(rng, rows*d, 1)
		f := func(x []float32) []float32 {
			y := make([]float32, len(x))
			vit.LayerNorm(y, x, rows, d, n, 1e-6)
			return y
		}
		g := make([]float32, len(x))
		LayerNormBackward(g, w, x, rows, d, n, 1e-6)
		checkVJP(t, "layernorm", x, f, g, w)
	})
	t.Run("linear", func(t *testing.T) {
		l := vit.Linear{In: d, Out: 5, W: randVec(rng, 5*d, 1), B: randVec(rng, 5, 1)}
		x, w := randVec(rng, rows*d, 1), randVec(rng, rows*5, 1)
		f := func(x []float32) []float32 {
			y := make([]float32, rows*5)
			vit.LinearForward(y, x, rows, l)
			return y
		}
		g := make([]float32, len(x))
		LinearBackward(g, w, rows, l)
		checkVJP(t, "linear", x, f, g, w)
	})
	for _, act := range []vit.Activation{vit.ActGELU, vit.ActGELUTanh, vit.ActQuickGELU} {
		t.Run(string(act), func(t *testing.T) {
			x, w := randVec(rng, 20, 2), randVec(rng, 20, 1)
			c := vit.Config{Act: act}
			f := func(x []float32) []float32 { y := slices.Clone(x); c.Activate(y); return y }
			g := slices.Clone(w)
			ActivationBackward(act, g, x)
			checkVJP(t, string(act), x, f, g, w)
		})
	}
	t.Run("softmax", func(t *testing.T) {
		x, w := randVec(rng, 9, 2), randVec(rng, 9, 1)
		f := func(x []float32) []float32 { y := slices.Clone(x); vit.Softmax(y); return y }
		g := slices.Clone(w)
		SoftmaxBackward(g, f(x))
		checkVJP(t, "softmax", x, f, g, w)
	})
	t.Run("attention", func(t *testing.T) {
		const n, heads, dh = 4, 2, 3
		D := heads * dh
		tokens := []int{0, 1, 2, 3}
		qkv, w := randVec(rng, n*3*D, 1), randVec(rng, n*D, 1)
		f := func(qkv []float32) []float32 {
			out := make([]float32, n*D)
			vit.Attention(out, qkv, n, heads, dh, vit.EditNone, tokens, false, false)
			return out
		}
		probs, _ := vit.Attention(make([]float32, n*D), qkv, n, heads, dh, vit.EditNone, tokens, true, false)
		_, g := AttentionBackward(qkv, probs, w, n, heads, dh)
		checkVJP(t, "attention", qkv, f, g, w)
	})
}

// attentionCase is a random attention backward's operands: qkv (n×3D),
// the forward's probabilities (H×n×n) and ∂L/∂(head outputs) (n×D).
func attentionCase(rng *rand.Rand, n, heads, dh int) (qkv []float32, probs *vit.Tensor, gHeads []float32) {
	D := heads * dh
	tokens := make([]int, n)
	for i := range tokens {
		tokens[i] = i
	}
	qkv, gHeads = randVec(rng, n*3*D, 1), randVec(rng, n*D, 1)
	probs, _ = vit.Attention(make([]float32, n*D), qkv, n, heads, dh, vit.EditNone, tokens, true, false)
	return qkv, probs, gHeads
}

// The GEMM-based AttentionBackward against its float64 loop twin, on odd
// sizes (a token count that fills no GEMM tile) and B/16's head width.
func TestAttentionBackwardTwin(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sz := range []struct{ n, heads, dh int }{{5, 2, 3}, {37, 3, 16}, {50, 2, 64}} {
		qkv, probs, gHeads := attentionCase(rng, sz.n, sz.heads, sz.dh)
		gotP, gotQKV := AttentionBackward(qkv, probs, gHeads, sz.n, sz.heads, sz.dh)
		wantP, wantQKV := AttentionBackwardNaive(qkv, probs, gHeads, sz.n, sz.heads, sz.dh)
		for _, c := range []struct {
			name      string
			got, want []float32
		}{{"gProbs", gotP.Data, wantP.Data}, {"gQKV", gotQKV, wantQKV}} {
			var worst, scale float64
			for i, w := range c.want {
				worst = max(worst, math.Abs(float64(c.got[i]-w)))
				scale = max(scale, math.Abs(float64(w)))
			}
			if scale == 0 || worst > 1e-5*scale {
				t.Errorf("n %d, heads %d, dh %d: %s differs from the twin by %.3g (max |twin| %.3g)",
					sz.n, sz.heads, sz.dh, c.name, worst, scale)
			}
		}
	}
}

// The backward that stops at block 0's attention (the rollout's) gives the
// full backward's attention gradients bit for bit, on every fixture.
func TestProbsOnlyBackwardIsBackward(t *testing.T) {
	for _, name := range goldenFixtures {
		t.Run(name, func(t *testing.T) {
			m, g := loadFixture(t, name)
			inputs, targets := goldenInputs(t, g)
			tp, err := record(m, inputs[0])
			if err != nil {
				t.Fatal(err)
			}
			gLogits := make([]float32, m.Config.Classes)
			gLogits[targets[0]] = 1
			want, _ := tp.backward(gLogits, nil, false)
			got, gEmbed := tp.backward(gLogits, nil, true)
			if gEmbed != nil {
				t.Error("the backward stopped at block 0's attention returned an embedding gradient")
			}
			for b := range want {
				if !reflect.DeepEqual(got[b].Data, want[b].Data) {
					t.Fatalf("block %d: the attention gradient differs from the full backward's", b)
				}
			}
		})
	}
}
