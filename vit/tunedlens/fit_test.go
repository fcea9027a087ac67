package tunedlens

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"vitlens/vit"
	"vitlens/vit/checkpoint"
	"vitlens/vit/lens"
	"vitlens/vit/vittest"
)

// fixture is the odd reference model with the inputs and golden readouts
// of tools/reference/make_tunedlens_golden.py.
type fixture struct {
	model   *vit.Model
	golden  *vittest.Golden
	images  []*vit.Tensor
	targets []int
	dir     string
}

func loadFixture(t *testing.T) fixture {
	t.Helper()
	ref, err := vittest.ReferenceDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(ref, "odd")
	m, _, err := checkpoint.Load(filepath.Join(dir, "timm.safetensors"), checkpoint.Options{Override: &vit.Config{Heads: 3}})
	if err != nil {
		t.Fatal(err)
	}
	g := vittest.Load(t, "odd", "golden_tunedlens.safetensors")
	f := fixture{model: m, golden: g, dir: dir}
	ts, err := g.Int64s("targets")
	if err != nil {
		t.Fatal(err)
	}
	for i := range ts {
		f.images = append(f.images, g.MustTensor(t, fmt.Sprintf("input.%d", i)))
		f.targets = append(f.targets, int(ts[i]))
	}
	return f
}

func (f fixture) translators(t *testing.T, name string) *lens.Translators {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(f.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := lens.ReadTranslators(name, data, f.model.Config)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

type tensors []*vit.Tensor

func (ts tensors) Len() int                         { return len(ts) }
func (ts tensors) Image(i int) (*vit.Tensor, error) { return ts[i], nil }

// Ranks, target logits, entropies and KLs read through non-zero
// translators equal PyTorch applying the same translators, on both of the
// CPU backend's projection paths.
func TestTranslatedReadoutsMatchTorch(t *testing.T) {
	f := loadFixture(t)
	tl := f.translators(t, "translators_random.safetensors")
	for _, fold := range []bool{false, true} {
		cpu := lens.NewCPU(f.model)
		cpu.Folded = &fold
		res, err := cpu.Analyze(f.images, lens.Request{Sites: vit.AllSites(), TopK: 5, Targets: f.targets, Lens: tl})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			for _, s := range lens.TranslatorSites {
				for b := range f.model.Config.Depth {
					ro := r.At(s, b)
					key := fmt.Sprintf("%s.%d.%d.", s, b, i)
					rank, err := f.golden.Int64s(key + "rank")
					if err != nil {
						t.Fatal(err)
					}
					for tok := range ro.Rank {
						if int64(ro.Rank[tok]) != rank[tok] {
							t.Fatalf("folded=%v %s token %d: rank %d, torch %d", fold, key, tok, ro.Rank[tok], rank[tok])
						}
					}
					for name, got := range map[string][]float32{"target_logit": ro.TargetLogit, "entropy": ro.Entropy, "kl": ro.KL} {
						want := f.golden.MustTensor(t, key+name).Data
						for tok := range got {
							if d := math.Abs(float64(got[tok] - want[tok])); d > 1e-4*(1+math.Abs(float64(want[tok]))) {
								t.Fatalf("folded=%v %s%s token %d: %g, torch %g", fold, key, name, tok, got[tok], want[tok])
							}
						}
					}
				}
			}
		}
	}
}

// --fit ridge on the fixture's images equals sklearn's Ridge (solver
// cholesky) on torch's hidden states.
func TestRidgeMatchesSklearn(t *testing.T) {
	f := loadFixture(t)
	want := f.translators(t, "translators_ridge.safetensors")
	got, err := Fit(f.model, tensors(f.images), Options{Fit: FitRidge, Ridge: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range lens.TranslatorSites {
		for b := range f.model.Config.Depth {
			g, w := got.At(s, b), want.At(s, b)
			for name, pair := range map[string][2][]float32{"weight": {g.W, w.W}, "bias": {g.B, w.B}} {
				scale := 0.0
				for _, v := range pair[1] {
					scale = math.Max(scale, math.Abs(float64(v)))
				}
				for i := range pair[0] {
					if d := math.Abs(float64(pair[0][i] - pair[1][i])); d > 1e-4*(1+scale) {
						t.Fatalf("%s.%d.%s[%d] = %g, sklearn %g", s, b, name, i, pair[0][i], pair[1][i])
					}
				}
			}
		}
	}
}

// --fit kl lowers the training loss at every step (one full batch per
// epoch and a small learning rate: each epoch's loss is measured before
// its update), ends below where it started, and is deterministic for a
// seed.
func TestKLLowersLossMonotonically(t *testing.T) {
	f := loadFixture(t)
	imgs := tensors(f.images)
	var losses []float64
	opt := Options{Fit: FitKL, Epochs: 8, Batch: len(imgs), LR: 3e-3, WeightDecay: 1e-4, Seed: 1,
		EpochLoss: func(_ int, l float64) { losses = append(losses, l) }}
	tl, err := Fit(f.model, imgs, opt)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Loss(f.model, lens.NewTranslators(f.model.Config.Dim, f.model.Config.Depth), imgs)
	if err != nil {
		t.Fatal(err)
	}
	final, err := Loss(f.model, tl, imgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("plain lens %.6f, per epoch %.6f, fitted %.6f", plain, losses, final)
	if math.Abs(losses[0]-plain) > 1e-6*plain {
		t.Fatalf("the first epoch's loss %g is not the plain lens's %g", losses[0], plain)
	}
	for i := 1; i < len(losses); i++ {
		if !(losses[i] < losses[i-1]) {
			t.Fatalf("epoch %d: loss %g did not fall below %g", i, losses[i], losses[i-1])
		}
	}
	if !(final < losses[len(losses)-1]) {
		t.Fatalf("fitted loss %g not below the last epoch's %g", final, losses[len(losses)-1])
	}
	a, _ := Fit(f.model, imgs, Options{Fit: FitKL, Epochs: 2, Batch: 3, LR: 1e-2, Seed: 9})
	b, _ := Fit(f.model, imgs, Options{Fit: FitKL, Epochs: 2, Batch: 3, LR: 1e-2, Seed: 9})
	for i, v := range a.At(vit.SiteHSMid, 1).W {
		if b.At(vit.SiteHSMid, 1).W[i] != v {
			t.Fatalf("two fits with one seed differ at W[%d]", i)
		}
	}
}

// The analytic gradient of klGrad against central finite differences.
func TestKLGradientMatchesFiniteDifferences(t *testing.T) {
	f := loadFixture(t)
	m := f.model
	d := m.Config.Dim
	tr, err := m.Forward(f.images[0], vit.Options{Taps: vit.TapSites(vit.SiteHS, vit.SiteHSMid)})
	if err != nil {
		t.Fatal(err)
	}
	n := len(tr.Tokens)
	h, final := tr.Site(vit.SiteHSMid, 0).Data, tr.Site(vit.SiteHS, m.Config.Depth-1).Data
	rt := f.translators(t, "translators_random.safetensors").At(vit.SiteHSMid, 0)
	w, b := append([]float32(nil), rt.W...), append([]float32(nil), rt.B...)
	head := lens.NewProjector(m)
	gw, gb := make([]float64, d*d), make([]float64, d)
	klGrad(m, head, lens.NewTranslator(d, w, b), h, final, n, float64(n), gw, gb)
	loss := func() float64 {
		return klGrad(m, head, lens.NewTranslator(d, w, b), h, final, n, float64(n), make([]float64, d*d), make([]float64, d))
	}
	// check compares the gradient g of parameters p at indices idx.
	check := func(name string, p []float32, g []float64, idx ...int) {
		const eps = 1e-2
		for _, i := range idx {
			old := p[i]
			p[i] = old + eps
			up := loss()
			p[i] = old - eps
			down := loss()
			p[i] = old
			if fd := (up - down) / (2 * eps); math.Abs(fd-g[i]) > 2e-3*(1+math.Abs(fd)) {
				t.Fatalf("%s[%d]: analytic %g, finite differences %g", name, i, g[i], fd)
			}
		}
	}
	check("dW", w, gw, 0, 7, d+3, d*d-1)
	check("dc", b, gb, 0, d-1)
}
