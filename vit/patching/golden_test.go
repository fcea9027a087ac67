package patching_test

// Hook values, activation patching, attribution patching and direct logit
// attribution against the TransformerLens-style PyTorch forward of
// tools/reference/make_hooks_golden.py (testdata/reference/<fixture>/hooks.safetensors).
// Tolerance: |go − torch| ≤ 1e-4·max(1, |torch|), as every parity test.

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"vitlens/vit"
	"vitlens/vit/dla"
	"vitlens/vit/patching"
	"vitlens/vit/vittest"
)

const tol = 1e-4

var hookFixtures = []string{"tiny", "odd", "ls_reg"}

type fixture struct {
	m       *vit.Model
	g       *vittest.Golden
	clean   *vit.Tensor
	corrupt *vit.Tensor
	metric  patching.Metric
	hooks   []vit.Hook
}

func load(t *testing.T, name string) fixture {
	t.Helper()
	g := vittest.Load(t, name, "hooks.safetensors")
	m := vittest.LoadTimmModel(t, name)
	metric, err := patching.ParseMetric(g.Meta["metric"], m.Config.Classes)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := json.Unmarshal([]byte(g.Meta["hooks"]), &names); err != nil {
		t.Fatal(err)
	}
	var hooks []vit.Hook
	for _, n := range names {
		h, err := m.Config.ParseHook(n)
		if err != nil {
			t.Fatal(err)
		}
		hooks = append(hooks, h)
	}
	if want := m.Config.Hooks(); fmt.Sprint(want) != fmt.Sprint(hooks) {
		t.Fatalf("the reference's hooks %v, ours %v", hooks, want)
	}
	return fixture{m: m, g: g, clean: g.MustTensor(t, "input.0"), corrupt: g.MustTensor(t, "input.1"), metric: metric, hooks: hooks}
}

func near(got, want float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

func expectClose(t *testing.T, what string, got []float32, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, torch %d", what, len(got), len(want))
		return
	}
	for i := range got {
		if !near(float64(got[i]), float64(want[i])) {
			t.Errorf("%s[%d]: %g, torch %g", what, i, got[i], want[i])
			return
		}
	}
}

func TestHookValuesMatchTorch(t *testing.T) {
	for _, name := range hookFixtures {
		t.Run(name, func(t *testing.T) {
			f := load(t, name)
			for i, in := range []*vit.Tensor{f.clean, f.corrupt} {
				fns, cache := vit.CacheHooks(f.hooks)
				if _, err := f.m.Forward(in, vit.Options{Hooks: fns}); err != nil {
					t.Fatal(err)
				}
				for _, h := range f.hooks {
					want := f.g.MustTensor(t, fmt.Sprintf("hook.%s.%d", h.Name(), i))
					got := cache[h]
					if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
						t.Errorf("%s: shape %v, torch %v", h.Name(), got.Shape, want.Shape)
						continue
					}
					if s := f.m.Config.HookShape(h, f.m.Config.NumTokens()); fmt.Sprint(s) != fmt.Sprint(want.Shape) {
						t.Errorf("%s: HookShape %v, torch %v", h.Name(), s, want.Shape)
					}
					expectClose(t, fmt.Sprintf("%s.%d", h.Name(), i), got.Data, want.Data)
				}
			}
		})
	}
}

// run sets up a patching run of the fixture's clean and corrupted image.
func (f fixture) run(t *testing.T, mode patching.Mode) (patching.Run, patching.Source, patching.Source, float64, float64) {
	t.Helper()
	r := patching.Run{Model: f.m, Metric: f.metric, Mode: mode}
	clean, cl, err := r.Cache(f.clean, f.hooks)
	if err != nil {
		t.Fatal(err)
	}
	corrupt, co, err := r.Cache(f.corrupt, f.hooks)
	if err != nil {
		t.Fatal(err)
	}
	return r, clean, corrupt, f.metric.Value(cl), f.metric.Value(co)
}

func TestPatchingMatchesTorch(t *testing.T) {
	for _, name := range hookFixtures {
		t.Run(name, func(t *testing.T) {
			f := load(t, name)
			r, clean, _, cm, base := f.run(t, patching.ModePatch)
			for what, got := range map[string]float64{"clean_metric": cm, "corrupt_metric": base} {
				if want := metaFloat(t, f.g, what); !near(got, want) {
					t.Errorf("%s %g, torch %g", what, got, want)
				}
			}
			check := func(key string, sites []patching.Site, mode patching.Mode) {
				t.Helper()
				r.Mode = mode
				res, err := r.Patch(f.corrupt, sites, clean, cm, base)
				if err != nil {
					t.Fatal(err)
				}
				want := f.g.MustTensor(t, key).Data
				got := make([]float32, len(res))
				for i, x := range res {
					got[i] = float32(x.Metric)
				}
				expectClose(t, key, got, want)
			}
			c := f.m.Config
			layer, err := patching.Sites(c, f.hooks, patching.PerLayer, c.NumTokens())
			if err != nil {
				t.Fatal(err)
			}
			check("patch.layer", layer, patching.ModePatch)
			for _, key := range f.g.Names() {
				kind, hookName, ok := cutKey(key)
				if !ok {
					continue
				}
				h, err := c.ParseHook(hookName)
				if err != nil {
					t.Fatal(err)
				}
				per := map[string]patching.Per{"token": patching.PerToken, "head": patching.PerHead, "position": patching.PerPosition}[kind]
				mode := patching.ModePatch
				if strings.HasPrefix(key, "zero.") {
					mode = patching.ModeZero
				}
				sites, err := patching.Sites(c, []vit.Hook{h}, per, c.NumTokens())
				if err != nil {
					t.Fatal(err)
				}
				check(key, sites, mode)
			}
		})
	}
}

// cutKey splits "patch.token.blocks.0.hook_resid_pre" into its cut and hook.
func cutKey(key string) (kind, hook string, ok bool) {
	for _, p := range []string{"patch.", "zero."} {
		if rest, found := strings.CutPrefix(key, p); found && rest != "layer" {
			kind, hook, ok = strings.Cut(rest, ".")
			return kind, hook, ok
		}
	}
	return "", "", false
}

func metaFloat(t *testing.T, g *vittest.Golden, key string) float64 {
	t.Helper()
	var v float64
	if _, err := fmt.Sscan(g.Meta[key], &v); err != nil {
		t.Fatalf("metadata %s: %v", key, err)
	}
	return v
}

func TestAttributionMatchesTorch(t *testing.T) {
	for _, name := range hookFixtures {
		t.Run(name, func(t *testing.T) {
			f := load(t, name)
			r, clean, corrupt, _, _ := f.run(t, patching.ModePatch)
			c := f.m.Config
			// Per element: each hook's sites cut to single values would be
			// too many forward-free sums to name; cut per token and compare
			// the sums, then per layer.
			for _, per := range []patching.Per{patching.PerLayer, patching.PerToken} {
				sites, err := patching.Sites(c, f.hooks, per, c.NumTokens())
				if err != nil {
					t.Fatal(err)
				}
				est, err := r.Attribution(f.corrupt, sites, clean, corrupt)
				if err != nil {
					t.Fatal(err)
				}
				for i, s := range sites {
					prod := f.g.MustTensor(t, "attr."+s.Hook.Name())
					// A sum of many products cancels: its tolerance scales
					// with the sum of their magnitudes.
					var want, mass float64
					s.Elements(prod.Shape, func(j int) {
						want += float64(prod.Data[j])
						mass += math.Abs(float64(prod.Data[j]))
					})
					if math.Abs(est[i]-want) > tol*math.Max(1, mass) {
						t.Errorf("%s %v: attribution %g, torch %g (Σ|terms| %g)", per, s, est[i], want, mass)
					}
				}
			}
		})
	}
}

func TestDLAMatchesTorch(t *testing.T) {
	for _, name := range hookFixtures {
		t.Run(name, func(t *testing.T) {
			f := load(t, name)
			target := int(metaFloat(t, f.g, "dla_target"))
			res, err := dla.Compute(f.m, f.clean, dla.Options{Target: target})
			if err != nil {
				t.Fatal(err)
			}
			c := f.m.Config
			heads := f.g.MustTensor(t, "dla.heads").Data
			for b, row := range res.HeadGrid(c) {
				for h, v := range row {
					if !near(v, float64(heads[b*c.Heads+h])) {
						t.Errorf("block %d head %d: %g, torch %g", b, h, v, heads[b*c.Heads+h])
					}
				}
			}
			want := map[dla.Kind][]float32{
				dla.KindEmbed: f.g.MustTensor(t, "dla.embed").Data, dla.KindPosEmbed: f.g.MustTensor(t, "dla.pos_embed").Data,
				dla.KindMLP: f.g.MustTensor(t, "dla.mlp").Data, dla.KindAttnBias: f.g.MustTensor(t, "dla.attn_bias").Data,
			}
			for _, p := range res.Parts {
				w, ok := want[p.Kind]
				if !ok {
					continue
				}
				v := w[max(p.Block, 0)]
				if !near(p.Logit, float64(v)) {
					t.Errorf("%s block %d: %g, torch %g", p.Kind, p.Block, p.Logit, v)
				}
			}
			if bias := metaFloat(t, f.g, "dla_bias"); !near(res.Bias, bias) {
				t.Errorf("head bias term %g, torch %g", res.Bias, bias)
			}
		})
	}
}
