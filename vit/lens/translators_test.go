package lens

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"vitlens/vit"
)

// A file of zero translators reproduces the plain lens bit for bit, and
// through the folded fast path within rounding: W·h = 0 exactly, so the
// translated vector is h itself.
func TestZeroTranslatorsArePlainLens(t *testing.T) {
	m := testModel(t, tinyCLS)
	data, err := NewTranslators(m.Config.Dim, m.Config.Depth).Encode()
	if err != nil {
		t.Fatal(err)
	}
	zero, err := ReadTranslators("zero.safetensors", data, m.Config)
	if err != nil {
		t.Fatal(err)
	}
	imgs := vit.RandomImages(m.Config, 2, 3)
	for _, fold := range []bool{false, true} {
		cpu := NewCPU(m)
		cpu.Folded = &fold
		req := Request{Sites: vit.AllSites(), TopK: 5, Targets: []int{4, -1}}
		plain, err := cpu.Analyze(imgs, req)
		if err != nil {
			t.Fatal(err)
		}
		req.Lens = zero
		tuned, err := cpu.Analyze(imgs, req)
		if err != nil {
			t.Fatal(err)
		}
		tol := 0.0
		if fold {
			tol = 1e-4
		}
		for i := range plain {
			for j, a := range plain[i].Readouts {
				b := tuned[i].Readouts[j]
				for tok := range a.Rank {
					if !fold && (a.Rank[tok] != b.Rank[tok] || a.TargetLogit[tok] != b.TargetLogit[tok] || a.Entropy[tok] != b.Entropy[tok] || a.KL[tok] != b.KL[tok]) {
						t.Fatalf("%v block %d token %d: zero translators differ from the plain lens", a.Site, a.Block, tok)
					}
					for _, d := range []float64{float64(a.TargetLogit[tok] - b.TargetLogit[tok]), float64(a.Entropy[tok] - b.Entropy[tok]), float64(a.KL[tok] - b.KL[tok])} {
						if math.Abs(d) > tol*(1+math.Abs(float64(a.TargetLogit[tok]))) {
							t.Fatalf("folded=%v %v block %d token %d: differs by %g", fold, a.Site, a.Block, tok, d)
						}
					}
				}
			}
		}
	}
}

// The last block's hs is the reference of the KL column: 0 there; the
// entropy is that of softmax of the target logit's row.
func TestEntropyKLColumns(t *testing.T) {
	m := testModel(t, tinyCLS)
	cpu := NewCPU(m)
	res, err := cpu.Analyze(vit.RandomImages(m.Config, 1, 7), Request{Sites: []vit.Site{vit.SiteHS}, TopK: 5})
	if err != nil {
		t.Fatal(err)
	}
	last := res[0].At(vit.SiteHS, m.Config.Depth-1)
	for tok, kl := range last.KL {
		if kl > 1e-6 {
			t.Fatalf("token %d: KL of the last block to itself is %g", tok, kl)
		}
	}
	first := res[0].At(vit.SiteHS, 0)
	var sum float64
	for _, kl := range first.KL {
		sum += float64(kl)
	}
	if sum <= 0 {
		t.Fatalf("block 0 has zero KL to the last block on every token")
	}
	for tok, h := range first.Entropy {
		if h < 0 || float64(h) > math.Log(float64(m.Config.Classes))+1e-6 {
			t.Fatalf("token %d: entropy %g outside [0, log C]", tok, h)
		}
	}
}

func TestEntropyKLByHand(t *testing.T) {
	logits := []float32{1, 2, 0.5}
	p := []float64{0.2, 0.3, 0.5}
	logq, logp := make([]float64, 3), make([]float64, 3)
	LogSoftmax(logq, logits)
	for i := range p {
		logp[i] = math.Log(p[i])
	}
	h, kl := EntropyKL(logq, logp)
	z := math.Exp(1) + math.Exp(2) + math.Exp(0.5)
	var wantH, wantKL float64
	for i, l := range logits {
		q := math.Exp(float64(l)) / z
		wantH -= q * math.Log(q)
		wantKL += p[i] * math.Log(p[i]/q)
	}
	if math.Abs(h-wantH) > 1e-12 || math.Abs(kl-wantKL) > 1e-12 {
		t.Fatalf("entropy %g KL %g, want %g %g", h, kl, wantH, wantKL)
	}
}

// readRow (float32 exponentials and lanes) against its float64 twin,
// EntropyKL of LogSoftmax, and Rank and TopK, on flat and peaked rows of
// odd lengths (vector body and tail), a reference that all but rules a
// class out, and with the vector kernels on and off. Entropy and KL are within
// 2e-6·(1 + the logits' scale) nats of the twin: the float32 exponential
// (relative 8.4e-7) and float32 sums of about n/8 terms, each error a
// fraction of the logits' spread (docs/method.md states the precision).
func TestReadRowMatchesTwin(t *testing.T) {
	for _, vector := range []bool{true, false} {
		saved := vectorRows
		vectorRows = vectorRows && vector
		rng := rand.New(rand.NewPCG(4, 4))
		worst := 0.0
		for _, scale := range []float64{0.1, 3, 40} {
			for trial := 0; trial < 40; trial++ {
				n := 1 + rng.IntN(1100)
				logits, ref := make([]float32, n), make([]float32, n)
				for i := range logits {
					logits[i] = float32(rng.NormFloat64() * scale)
					ref[i] = float32(rng.NormFloat64() * scale)
				}
				if n > 2 {
					ref[0] = -1e4 // a class the reference all but rules out
				}
				if trial%4 == 0 { // ties, at the top too
					for i := range logits {
						logits[i] = float32(math.Round(float64(logits[i])))
					}
				}
				logp, logq := make([]float64, n), make([]float64, n)
				LogSoftmax(logp, ref)
				LogSoftmax(logq, logits)
				wantH, wantKL := EntropyKL(logq, logp)
				target := rng.IntN(n)
				k := []int{1, 5, 8, 9}[trial%4]
				top, want := make([]int32, k), make([]int32, k)
				rank, h, kl := readRow(top, logits, make([]float32, n), logits[target], newKLReference(make([]float32, n), ref))
				if want := Rank(logits, target); rank != want {
					t.Fatalf("vector=%v n %d: rank %d, Rank %d", vector, n, rank, want)
				}
				if TopK(want, logits); !slices.Equal(top, want) {
					t.Fatalf("vector=%v n %d: top-%d %v, TopK %v", vector, n, k, top, want)
				}
				tol := 2e-6 * (1 + scale)
				if math.Abs(h-wantH) > tol || math.Abs(kl-wantKL) > tol {
					t.Fatalf("vector=%v scale %g n %d: entropy %g KL %g, twin %g %g", vector, scale, n, h, kl, wantH, wantKL)
				}
				worst = max(worst, math.Abs(h-wantH)/(1+scale), math.Abs(kl-wantKL)/(1+scale))
			}
		}
		vectorRows = saved
		t.Logf("vector=%v: entropy and KL within %.2g·(1 + scale) of the float64 twin", vector, worst)
	}
}

func TestReadTranslatorsRejects(t *testing.T) {
	c := tinyCLS
	good := NewTranslators(c.Dim, c.Depth)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range good.At(vit.SiteHS, 1).W {
		good.At(vit.SiteHS, 1).W[i] = float32(rng.NormFloat64())
	}
	data, err := good.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ReadTranslators("t.safetensors", data, c)
	if err != nil {
		t.Fatal(err)
	}
	if back.At(vit.SiteHS, 1).W[5] != good.At(vit.SiteHS, 1).W[5] {
		t.Fatal("round trip lost a weight")
	}
	wide := c
	wide.Dim = 32
	if _, err := ReadTranslators("t.safetensors", data, wide); err == nil || !strings.Contains(err.Error(), "24-wide") {
		t.Fatalf("width mismatch: %v", err)
	}
	half := NewTranslators(c.Dim, c.Depth)
	half.Set(vit.SiteHSMid, 2, nil)
	data, _ = half.Encode()
	if _, err := ReadTranslators("t.safetensors", data, c); err == nil || !strings.Contains(err.Error(), "hs_mid.2.weight") {
		t.Fatalf("missing block: %v", err)
	}
}
