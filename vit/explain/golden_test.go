package explain

// Parity with torch autograd: tools/reference/make_explain_golden.py runs the
// reference fixtures in float64 and dumps gradients and maps. Tolerance:
// max |go − torch| ≤ tol · max|torch| over each tensor (the gradients span
// orders of magnitude, so a per-element relative bound would be dominated by
// values that are zero up to rounding).

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vitlens/vit"
	"vitlens/vit/checkpoint"
	"vitlens/vit/vittest"
)

const gradTol = 5e-5 // measured worst: 1.9e-5 (gap), ≤1e-5 elsewhere

// goldenFixtures are the paper's kinds (make_golden.py), then the backbones
// of make_backbones.py: distilled DeiT, LayerScale with registers, a CLIP
// tower (QuickGELU) read through its head file, and ls_reg's weights with
// the tanh GELU.
var goldenFixtures = []string{"tiny", "odd", "nobias", "gap", "deit_dist", "ls_reg", "clip", "ls_reg_tanh", "clip_normalize"}

// fixtureWeights names the reference folder whose weights a golden file
// explains, the activation it overrides and the head file it reads, where
// not the fixture's own.
var fixtureWeights = map[string]struct {
	dir  string
	act  vit.Activation
	head string
}{"ls_reg_tanh": {dir: "ls_reg", act: vit.ActGELUTanh}, "clip_normalize": {dir: "clip", head: "head_normalize.safetensors"}}

func loadFixture(t *testing.T, name string) (*vit.Model, *vittest.Golden) {
	t.Helper()
	g, err := vittest.OpenGolden(filepath.Join("..", "..", "testdata", "explain", name+".safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := g.Config()
	if err != nil {
		t.Fatal(err)
	}
	src := fixtureWeights[name]
	if src.dir == "" {
		src.dir = name
	}
	dir := filepath.Join("..", "..", "testdata", "reference", src.dir)
	opt := checkpoint.Options{Override: &vit.Config{Heads: cfg.Heads, Act: src.act}}
	if js, err := os.ReadFile(filepath.Join(dir, "config.json")); err == nil {
		opt.ConfigJSON, opt.ConfigName = js, "config.json"
	}
	m, _, err := checkpoint.Load(filepath.Join(dir, "timm.safetensors"), opt)
	if err != nil {
		t.Fatal(err)
	}
	if src.head == "" {
		src.head = "head.safetensors"
	}
	if data, err := os.ReadFile(filepath.Join(dir, src.head)); err == nil {
		head, err := checkpoint.ReadHead(src.head, data)
		if err == nil {
			err = checkpoint.ApplyHead(m, head)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if m.Config != cfg {
		t.Fatalf("config %+v, torch used %+v", m.Config, cfg)
	}
	return m, g
}

// relErr is max|got − want| / max|want|.
func relErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var scale float64
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	return vittest.MaxAbsDiff(got, want) / math.Max(scale, 1e-30)
}

func expect(t *testing.T, what string, got, want []float32, tol float64) float64 {
	t.Helper()
	e := relErr(got, want)
	if !(e <= tol) {
		t.Errorf("%s: relative error %.3g > %.3g", what, e, tol)
	}
	return e
}

func goldenInputs(t *testing.T, g *vittest.Golden) (inputs []*vit.Tensor, targets []int) {
	for i := 0; g.Has(fmt.Sprintf("input.%d", i)); i++ {
		inputs = append(inputs, g.MustTensor(t, fmt.Sprintf("input.%d", i)))
		tg, err := g.Int64s(fmt.Sprintf("target.%d", i))
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, int(tg[0]))
	}
	if len(inputs) == 0 {
		t.Fatalf("%s: no inputs", g.Path)
	}
	return inputs, targets
}

func TestLogitGradsMatchAutograd(t *testing.T) {
	for _, name := range goldenFixtures {
		t.Run(name, func(t *testing.T) {
			m, g := loadFixture(t, name)
			inputs, targets := goldenInputs(t, g)
			worst := 0.0
			for i, in := range inputs {
				tp, err := record(m, in)
				if err != nil {
					t.Fatal(err)
				}
				expect(t, fmt.Sprintf("logits.%d", i), tp.Logits, g.MustTensor(t, fmt.Sprintf("logits.%d", i)).Data, 1e-5)
				gp, ge, err := LogitAttentionGrads(m, in, targets[i])
				if err != nil {
					t.Fatal(err)
				}
				for b, gb := range gp {
					worst = max(worst, expect(t, fmt.Sprintf("chefer.grad.%d.%d", b, i), gb.Data, g.MustTensor(t, fmt.Sprintf("chefer.grad.%d.%d", b, i)).Data, gradTol))
				}
				worst = max(worst, expect(t, fmt.Sprintf("grad.embed.%d", i), ge, g.MustTensor(t, fmt.Sprintf("grad.embed.%d", i)).Data, gradTol))
			}
			t.Logf("%s: worst relative error of ∂y/∂A and ∂y/∂embed: %.2g", name, worst)
		})
	}
}

func TestMapsMatchAutograd(t *testing.T) {
	for _, name := range goldenFixtures {
		t.Run(name, func(t *testing.T) {
			m, g := loadFixture(t, name)
			inputs, targets := goldenInputs(t, g)
			if !m.Config.ClassToken {
				if _, err := Map(m, inputs[0], 0, Options{}); err == nil {
					t.Fatal("a model without [CLS] was explained")
				}
				return
			}
			worst := map[string]float64{}
			for i, in := range inputs {
				for _, v := range []struct {
					key    string
					double bool
				}{{"ours", false}, {"ours2", true}} {
					mp, err := Map(m, in, targets[i], Options{DoubleSoftmax: v.double, NoChefer: v.double})
					if err != nil {
						t.Fatal(err)
					}
					tp, _ := record(m, in)
					for b := range m.Blocks {
						grad, _ := clsAttentionGrad(tp, b, targets[i], Options{DoubleSoftmax: v.double})
						key := fmt.Sprintf("%s.grad.%d.%d", v.key, b, i)
						worst[v.key+".grad"] = max(worst[v.key+".grad"], expect(t, key, grad, g.MustTensor(t, key).Data, gradTol))
					}
					key := fmt.Sprintf("%s.map.%d", v.key, i)
					worst[v.key+".map"] = max(worst[v.key+".map"], expect(t, key, mp.Ours, g.MustTensor(t, key).Data, gradTol))
					if !v.double {
						key := fmt.Sprintf("chefer.map.%d", i)
						worst["chefer.map"] = max(worst["chefer.map"], expect(t, key, mp.Chefer, g.MustTensor(t, key).Data, gradTol))
					}
				}
			}
			t.Logf("%s: worst relative errors %v", name, worst)
		})
	}
}

// The original's other gradient variants (spec §3.9): cat_prob on the
// attention, and key_proj_vals with either objective. The golden files hold
// the original's own gradients: ∂o[c] for cat_prob, where ours
// differentiates ℓ = −o[c], hence the sign.
func TestVariantsMatchAutograd(t *testing.T) {
	for _, name := range goldenFixtures {
		t.Run(name, func(t *testing.T) {
			m, g := loadFixture(t, name)
			if !m.Config.ClassToken {
				t.Skip("no [CLS]: explained maps are refused (TestMapsMatchAutograd)")
			}
			inputs, targets := goldenInputs(t, g)
			c := m.Config
			P := c.NumPatches()
			worst := map[string]float64{}
			check := func(key string, got, want []float32) {
				k, _, _ := strings.Cut(key, ".")
				worst[k] = max(worst[k], expect(t, key, got, want, gradTol))
			}
			for i, in := range inputs {
				tp, err := record(m, in)
				if err != nil {
					t.Fatal(err)
				}
				cat := Options{Objective: CatProb}
				for b := range m.Blocks {
					grad, _ := clsAttentionGrad(tp, b, targets[i], cat)
					check(fmt.Sprintf("catprob.grad.%d.%d", b, i), negate(grad), g.MustTensor(t, fmt.Sprintf("catprob.grad.%d.%d", b, i)).Data)
				}
				mp, err := Map(m, in, targets[i], Options{Objective: CatProb, NoChefer: true})
				if err != nil {
					t.Fatal(err)
				}
				check(fmt.Sprintf("catprob.map.%d", i), mp.Ours, g.MustTensor(t, fmt.Sprintf("catprob.map.%d", i)).Data)

				for _, v := range []struct {
					key string
					obj Objective
					neg bool // the golden gradient is of +o[c]
				}{{"kpv", CrossEntropy, false}, {"kpvcat", CatProb, true}} {
					opt := Options{Objective: v.obj, Input: KeyProjVals, NoChefer: true}
					for b := range m.Blocks {
						grad, _ := headOutputGrads(tp, b, tp.n, targets[i], opt)
						if v.neg {
							grad = negate(grad)
						}
						check(fmt.Sprintf("%s.grad.%d.%d", v.key, b, i), grad, g.MustTensor(t, fmt.Sprintf("%s.grad.%d.%d", v.key, b, i)).Data)
					}
					mp, err := Map(m, in, targets[i], opt)
					if err != nil {
						t.Fatal(err)
					}
					check(fmt.Sprintf("%s.map.%d", v.key, i), mp.Ours, g.MustTensor(t, fmt.Sprintf("%s.map.%d", v.key, i)).Data)
					for b := range m.Blocks {
						heads := make([]float32, 0, c.Heads*P)
						for _, h := range mp.PerHead[b] {
							heads = append(heads, h...)
						}
						key := fmt.Sprintf("%s.headmap.%d.%d", v.key, b, i)
						check(key, heads, g.MustTensor(t, key).Data)
					}
				}
			}
			t.Logf("%s: worst relative errors %v", name, worst)
		})
	}
}

// The removal test's curves along the paper's map, on the backbones: every
// prefix token kept, the distillation token read by the classifier.
func TestRemovalCurvesMatchTorch(t *testing.T) {
	for _, name := range goldenFixtures[4:] {
		t.Run(name, func(t *testing.T) {
			m, g := loadFixture(t, name)
			inputs, targets := goldenInputs(t, g)
			first := m.Config.FirstImageToken()
			for i, in := range inputs {
				mp, err := Map(m, in, targets[i], Options{NoChefer: true})
				if err != nil {
					t.Fatal(err)
				}
				for _, dir := range []string{Negative, Positive} {
					got, err := Curve(m, in, Order(widen(mp.Ours), first), dir)
					if err != nil {
						t.Fatal(err)
					}
					want, err := g.Int64s(fmt.Sprintf("removal.ours.%s.%d", dir, i))
					if err != nil {
						t.Fatal(err)
					}
					for n := range want {
						if n >= len(got) || int64(got[n]) != want[n] {
							t.Fatalf("%s %d: predictions %v, torch %v", dir, i, got, want)
						}
					}
				}
			}
		})
	}
}

// Each activation's derivative against torch autograd on a grid.
func TestActivationBackwardMatchesAutograd(t *testing.T) {
	g, err := vittest.OpenGolden(filepath.Join("..", "..", "testdata", "explain", "activations.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	x := g.MustTensor(t, "act.x").Data
	for _, act := range []vit.Activation{vit.ActGELU, vit.ActGELUTanh, vit.ActQuickGELU} {
		got := make([]float32, len(x))
		for i := range got {
			got[i] = 1
		}
		ActivationBackward(act, got, x)
		expect(t, string(act), got, g.MustTensor(t, "grad."+string(act)).Data, 1e-6)
	}
}

func negate(x []float32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = -v
	}
	return out
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{Objective: "entropy"}, {Input: "values"}, {Objective: CatProb, DoubleSoftmax: true}} {
		if o.Validate() == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	for _, o := range []Options{{}, {Objective: CatProb, Input: KeyProjVals}, {DoubleSoftmax: true, Input: KeyProjVals}} {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
