package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// Model-level checks: the GPU backend against the CPU one (and the pure-Go
// forward it wraps) on random models of several architectures.
// Bounds: logits and raw taps within 1e-4·max(1,|cpu|); lens target logits
// likewise; ranks identical except true ties (another class within 1e-4 of
// the target); each top-k entry's logit within 1e-4 of the CPU's at that
// position (identical indices except ties). Entropy and KL (nats) within
// statsTol·max(1, |cpu|): they move with the logits' own differences.
const (
	modelTol = 1e-4
	statsTol = 1e-4
)

func newBackend(t testing.TB, m *vit.Model) *Backend {
	t.Helper()
	testHarness(t) // skips the test when there is no adapter
	b, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// randomModel is vit.NewRandom with a non-trivial final norm and a head
// scaled up so the lens ranks spread out (as lens's own tests do).
func randomModel(t testing.TB, c vit.Config, seed uint64) *vit.Model {
	t.Helper()
	m, err := vit.NewRandom(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 6))
	for i := range m.Norm.W {
		m.Norm.W[i] = 1 + 0.3*float32(rng.NormFloat64())
		m.Norm.B[i] = 0.3 * float32(rng.NormFloat64())
	}
	for i := range m.Head.B {
		m.Head.B[i] = 0.5 * float32(rng.NormFloat64())
	}
	m.Head = m.Head.Unpacked()
	for i := range m.Head.W {
		m.Head.W[i] *= 20
	}
	if c.PostNorm { // the 1e-5 init would make every update vanish
		for i := range m.Blocks {
			for j := range m.Blocks[i].Norm1.W {
				m.Blocks[i].Norm1.W[j], m.Blocks[i].Norm2.W[j] = 1, 0.7
			}
		}
	}
	return m
}

var (
	cfgCLS = vit.Config{ImageSize: 16, PatchSize: 4, Channels: 3, Dim: 24, Depth: 3, Heads: 3, MLPDim: 40,
		Classes: 37, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}
	cfgNoBias = func() vit.Config { c := cfgCLS; c.QKVBias = false; return c }()
	cfgGAP    = func() vit.Config {
		c := cfgCLS
		c.ClassToken, c.Pool, c.PostNorm, c.QKVBias = false, vit.PoolMean, true, false
		return c
	}()
	// Odd sizes everywhere: 3×3 patches of 5, head dim 5, 3 classes (so
	// top-5 has -1 entries), a mean-pooled model that keeps a [CLS] token.
	cfgOdd = vit.Config{ImageSize: 15, PatchSize: 5, Channels: 3, Dim: 20, Depth: 2, Heads: 4, MLPDim: 33,
		Classes: 3, QKVBias: true, LNEps: 1e-5, ClassToken: true, Pool: vit.PoolMean}
)

// cpuReference runs the pure-Go forward with every site tapped.
func cpuReference(t testing.TB, m *vit.Model, img *vit.Tensor, req lens.Request, keep []int) *vit.Trace {
	t.Helper()
	taps := req.Taps
	for s := range vit.NumSites {
		taps.Sites[s] = true
	}
	tr, err := m.Forward(img, vit.Options{Taps: taps, Edit: req.Edit, Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// worstRel is max |got−want|/max(1,|want|) (+Inf on a length mismatch).
func worstRel(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	w := 0.0
	for i := range got {
		d := math.Abs(float64(got[i])-float64(want[i])) / math.Max(1, math.Abs(float64(want[i])))
		if d > w || math.IsNaN(d) {
			w = d
		}
	}
	return w
}

// compareResults checks GPU results against the CPU forward and lens and
// logs the error measured. It returns how many readout rows were identical.
func compareResults(t *testing.T, m *vit.Model, images []*vit.Tensor, req lens.Request, got []*lens.Result) {
	t.Helper()
	c := m.Config
	proj := lens.NewProjector(m)
	worstLogit, worstTap, worstStats := 0.0, 0.0, 0.0
	rows, exact := 0, 0
	for i, img := range images {
		var keep []int
		if req.Keep != nil {
			keep = req.Keep[i]
		}
		ref := cpuReference(t, m, img, req, keep)
		n := len(ref.Tokens)
		final := lens.LogSoftmaxRows(proj.Direct(ref.Site(vit.SiteHS, c.Depth-1).Data, n), c.Classes)
		logq := make([]float64, c.Classes)
		g := got[i]
		if fmt.Sprint(g.Tokens) != fmt.Sprint(ref.Tokens) {
			t.Fatalf("image %d: tokens %v, cpu %v", i, g.Tokens, ref.Tokens)
		}
		worstLogit = math.Max(worstLogit, worstRel(g.Logits, ref.Logits))
		target := -1
		if req.Targets != nil {
			target = req.Targets[i]
		}
		if target < 0 {
			target = lens.Argmax(ref.Logits)
			if g.Target != target && math.Abs(float64(ref.Logits[g.Target]-ref.Logits[target])) > modelTol {
				t.Errorf("image %d: target (prediction) %d, cpu %d", i, g.Target, target)
			}
			target = g.Target // a near-tie may pick the other: judge the rest by the GPU's choice
		} else if g.Target != target {
			t.Errorf("image %d: target %d, asked %d", i, g.Target, target)
		}
		if len(g.Readouts) != len(req.Sites)*c.Depth {
			t.Fatalf("image %d: %d readouts, want %d", i, len(g.Readouts), len(req.Sites)*c.Depth)
		}
		for si, s := range req.Sites {
			for blk := 0; blk < c.Depth; blk++ {
				r := g.Readouts[si*c.Depth+blk]
				if g.At(s, blk) != &g.Readouts[si*c.Depth+blk] {
					t.Fatalf("At(%v, %d) does not find readout %d", s, blk, si*c.Depth+blk)
				}
				if r.Site != s || r.Block != blk || r.K != req.TopK {
					t.Fatalf("readout %d is %v/%d/k%d, want %v/%d/k%d", si*c.Depth+blk, r.Site, r.Block, r.K, s, blk, req.TopK)
				}
				h := ref.Site(s, blk).Data
				if tr := req.Lens.At(s, blk); tr != nil {
					h = tr.Apply(h, n) // the tuned lens, as the CPU backend applies it
				}
				logits := proj.Direct(h, n)
				for tok := 0; tok < n; tok++ {
					ok, problem := lensCheck(logits[tok*c.Classes:(tok+1)*c.Classes], target, int(r.Rank[tok]), r.TargetLogit[tok], r.TopOf(tok), modelTol)
					if problem != "" {
						t.Errorf("image %d %v block %d token %d: %s", i, s, blk, tok, problem)
					}
					lens.LogSoftmax(logq, logits[tok*c.Classes:(tok+1)*c.Classes])
					wantH, wantKL := lens.EntropyKL(logq, final[tok*c.Classes:(tok+1)*c.Classes])
					eH := math.Abs(float64(r.Entropy[tok])-wantH) / math.Max(1, wantH)
					eKL := math.Abs(float64(r.KL[tok])-wantKL) / math.Max(1, wantKL)
					worstStats = math.Max(worstStats, math.Max(eH, eKL))
					if !(eH <= statsTol && eKL <= statsTol) { // NaN fails too
						t.Errorf("image %d %v block %d token %d: entropy %g, KL %g; cpu %g, %g", i, s, blk, tok, r.Entropy[tok], r.KL[tok], wantH, wantKL)
					}
					rows++
					if ok {
						exact++
					}
				}
			}
		}
		// Raw taps, when asked.
		tap := func(name string, a, b *vit.Tensor) {
			if a == nil || b == nil {
				t.Errorf("image %d: tap %s missing (gpu %v, cpu %v)", i, name, a != nil, b != nil)
				return
			}
			if fmt.Sprint(a.Shape) != fmt.Sprint(b.Shape) {
				t.Errorf("image %d: tap %s shape %v, cpu %v", i, name, a.Shape, b.Shape)
				return
			}
			worstTap = math.Max(worstTap, worstRel(a.Data, b.Data))
		}
		tr := g.Trace
		if req.Taps.Embed {
			tap("embed", tr.Embed, ref.Embed)
		}
		for blk := 0; blk < c.Depth; blk++ {
			for s := range vit.NumSites {
				if req.Taps.Sites[s] {
					tap(fmt.Sprintf("%v.%d", s, blk), tr.Site(s, blk), ref.Site(s, blk))
				}
			}
			if req.Taps.AttnProbs {
				tap(fmt.Sprintf("attn_probs.%d", blk), tr.AttnProbs[blk], ref.AttnProbs[blk])
			}
			if req.Taps.Values {
				tap(fmt.Sprintf("values.%d", blk), tr.Values[blk], ref.Values[blk])
			}
			if req.Taps.FC1 {
				tap(fmt.Sprintf("fc1.%d", blk), tr.FC1[blk], ref.FC1[blk])
			}
		}
	}
	t.Logf("logits worst rel err %.2e, taps %.2e, entropy and KL %.2e; readout rows identical to the cpu: %d/%d", worstLogit, worstTap, worstStats, exact, rows)
	if worstLogit > modelTol {
		t.Errorf("logits differ from the cpu by %.2e relative (bound %.0e)", worstLogit, modelTol)
	}
	if worstTap > modelTol {
		t.Errorf("raw taps differ from the cpu by %.2e relative (bound %.0e)", worstTap, modelTol)
	}
}

// randomTranslators is a tuned lens of random translators on hs and hs_mid
// (zero on the last block).
func randomTranslators(c vit.Config) *lens.Translators {
	tl := lens.NewTranslators(c.Dim, c.Depth)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range lens.TranslatorSites {
		for blk := range c.Depth - 1 {
			tr := tl.At(s, blk)
			for i := range tr.W {
				tr.W[i] = float32(0.3 * rng.NormFloat64() / math.Sqrt(float64(c.Dim)))
			}
			for i := range tr.B {
				tr.B[i] = float32(0.3 * rng.NormFloat64())
			}
			tl.Set(s, blk, lens.NewTranslator(c.Dim, tr.W, tr.B))
		}
	}
	return tl
}

func allTaps() vit.Taps {
	t := vit.Taps{Embed: true, AttnProbs: true, Values: true, FC1: true}
	for s := range vit.NumSites {
		t.Sites[s] = true
	}
	return t
}

func TestBackendMatchesCPU(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    vit.Config
	}{{"cls_prenorm", cfgCLS}, {"no_qkv_bias", cfgNoBias}, {"gap_postnorm_mean", cfgGAP}, {"odd_mean_with_cls", cfgOdd}} {
		t.Run(tc.name, func(t *testing.T) {
			m := randomModel(t, tc.c, 11)
			b := newBackend(t, m)
			images := vit.RandomImages(tc.c, 3, 2)
			T := tc.c.NumTokens()
			requests := map[string]lens.Request{
				// A negative target: the model's own prediction.
				"predicted": {Sites: vit.AllSites(), TopK: 5, Targets: []int{3 % tc.c.Classes, -1, 0}},
				"known":     {Sites: []vit.Site{vit.SiteMLP, vit.SiteHS}, TopK: 3, Targets: []int{1, 2, 0}},
				"no_lens":   {TopK: 1, Taps: allTaps()},
				// Different kept lengths split the batch; taps come back per image.
				"drop": {Sites: []vit.Site{vit.SiteHSMid, vit.SiteAttn}, TopK: 5, Taps: allTaps(),
					Keep: [][]int{{0, 3, 1, T - 1}, nil, {0, 2, 5, 4}}},
			}
			if !tc.c.ClassToken {
				requests["drop"].Keep[0][0], requests["drop"].Keep[2][0] = 6, 7
			} else if tc.c.Pool == vit.PoolMean {
				requests["drop"].Keep[2][0] = 8 // [CLS] dropped: edits would find none
			}
			// The tuned lens, with known and predicted targets.
			tl := randomTranslators(tc.c)
			requests["tuned_known"] = lens.Request{Sites: vit.AllSites(), TopK: 5, Targets: []int{1, 2, 0}, Lens: tl}
			requests["tuned_predicted"] = lens.Request{Sites: []vit.Site{vit.SiteHSMid, vit.SiteHS}, TopK: 5, Targets: []int{-1, 1, -1}, Lens: tl}
			if tc.c.ClassToken {
				requests["self_only"] = lens.Request{Sites: vit.AllSites(), TopK: 5, Edit: vit.EditSelfOnly, Taps: vit.Taps{AttnProbs: true}}
				requests["no_cls"] = lens.Request{Sites: vit.AllSites(), TopK: 5, Edit: vit.EditNoCLS, Targets: []int{0, 1, 2}, Taps: vit.Taps{AttnProbs: true}}
			}
			for name, req := range requests {
				t.Run(name, func(t *testing.T) {
					if req.Targets != nil {
						for i := range req.Targets {
							req.Targets[i] %= tc.c.Classes
						}
					}
					got, err := b.Analyze(images, req)
					if err != nil {
						t.Fatal(err)
					}
					compareResults(t, m, images, req, got)
				})
			}
		})
	}
}

// One device serves several models in turn, as in the web app: its kernels
// are compiled once, closing one model's backend frees only that model's
// weights, and the next model runs on the same pipelines.
func TestDeviceSharedAcrossModels(t *testing.T) {
	testHarness(t)
	dev, err := OpenDevice()
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	compiled := len(dev.ks.by)
	req := lens.Request{Sites: vit.AllSites(), TopK: 4}
	for seed := uint64(1); seed <= 2; seed++ {
		m := randomModel(t, cfgCLS, seed)
		b, err := dev.NewBackend(m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		images := vit.RandomImages(cfgCLS, 2, seed)
		got, err := b.Analyze(images, req)
		if err != nil {
			t.Fatal(err)
		}
		compareResults(t, m, images, req, got)
		b.Close()
		if dev.Lost() != nil || len(dev.ks.by) != compiled || dev.ks.dummy == nil {
			t.Fatalf("closing model %d's backend touched the device: lost %v, %d kernels of %d", seed, dev.Lost(), len(dev.ks.by), compiled)
		}
	}
}
