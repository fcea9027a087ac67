package session

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vitlens/public"
	"vitlens/vit"
	"vitlens/vit/patching"
	"vitlens/vit/vittest"
)

// Every map and metric, and every clicked cell, say what vit/patching says
// for the same pair run directly: the metric of each site's patch, and the
// rank of class A with that patch.
func TestPatch(t *testing.T) {
	m, samples := demoSamples(t)
	clean, corrupt := mustPrepare(t, m, samples[0]), mustPrepare(t, m, samples[1])
	c := m.Model.Config
	for _, tc := range []struct {
		opt     PatchOptions
		pattern string
		per     patching.Per
		cols    int
	}{
		{PatchOptions{Grid: GridHeads, Metric: "logit", A: -1}, "blocks.*.attn.hook_z", patching.PerHead, c.Heads},
		{PatchOptions{Grid: GridHeads, Metric: "logit_diff", A: -1, B: -1}, "blocks.*.attn.hook_z", patching.PerHead, c.Heads},
		{PatchOptions{Grid: GridResidPre, Metric: "logit_diff", A: -1, B: -1}, "blocks.*.hook_resid_pre", patching.PerToken, c.NumTokens()},
		{PatchOptions{Grid: GridResidPre, Metric: "rank", A: 3}, "blocks.*.hook_resid_pre", patching.PerToken, c.NumTokens()},
		{PatchOptions{Grid: GridResidPost, Metric: "logit_diff", A: 2, B: 7}, "blocks.*.hook_resid_post", patching.PerToken, c.NumTokens()},
	} {
		name := string(tc.opt.Grid) + "/" + tc.opt.Metric
		t.Run(name, func(t *testing.T) {
			pm, err := Patch(m.Model, clean.Pixels, corrupt.Pixels, tc.opt, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(pm.Effect) != c.Depth || len(pm.Effect[0]) != tc.cols || pm.CleanClass == pm.CorruptClass {
				t.Fatalf("%d × %d effects, classes clean %d corrupted %d", len(pm.Effect), len(pm.Effect[0]), pm.CleanClass, pm.CorruptClass)
			}
			want := patching.Metric{Kind: tc.opt.Metric, A: tc.opt.A, B: tc.opt.B}
			if want.A < 0 {
				want.A = pm.CleanClass
			}
			if want.B < 0 {
				want.B = pm.CorruptClass
			}
			if tc.opt.Metric != "logit_diff" {
				want.B = 0
			}
			if pm.Metric != want {
				t.Fatalf("metric %v, want %v", pm.Metric, want)
			}
			hooks, _ := c.MatchHooks(tc.pattern)
			sites, _ := patching.Sites(c, hooks, tc.per, c.NumTokens())
			for _, metric := range []patching.Metric{want, {Kind: "rank", A: want.A}} {
				r := patching.Run{Model: m.Model, Mode: patching.ModePatch, Metric: metric}
				src, cleanLogits, err := r.Cache(clean.Pixels, hooks)
				if err != nil {
					t.Fatal(err)
				}
				if metric == want && pm.Clean != metric.Value(cleanLogits) {
					t.Errorf("clean %s: %g, vit/patching %g", metric, pm.Clean, metric.Value(cleanLogits))
				}
				res, err := r.Patch(corrupt.Pixels, sites, src, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				if len(res) != c.Depth*tc.cols {
					t.Fatalf("%d sites, the map %d × %d", len(res), c.Depth, tc.cols)
				}
				for i, p := range res {
					if i%5 != 0 && metric.Kind == "rank" {
						continue // a cell is one forward: check a fifth of them
					}
					col := p.Head
					if tc.per == patching.PerToken {
						col = p.Token
					}
					cell, err := pm.Cell(p.Hook.Block, col)
					if err != nil {
						t.Fatal(err)
					}
					got, effect := cell.Metric, pm.Corrupt+pm.Effect[p.Hook.Block][col]
					if metric.Kind == "rank" {
						got, effect = float64(cell.Rank), float64(cell.Rank)
					}
					if math.Abs(got-p.Metric) > 1e-9*math.Max(1, math.Abs(p.Metric)) || math.Abs(effect-p.Metric) > 1e-9*math.Max(1, math.Abs(p.Metric)) {
						t.Fatalf("block %d column %d %s: cell %g, map %g, vit/patching %g", p.Hook.Block, col, metric, got, effect, p.Metric)
					}
				}
			}
			if _, err := pm.Cell(c.Depth, 0); err == nil {
				t.Error("a block out of range gave no error")
			}
		})
	}
}

// Progress counts every cell in order, and asking to stop stops at once.
func TestPatchProgress(t *testing.T) {
	m, samples := demoSamples(t)
	clean, corrupt := mustPrepare(t, m, samples[0]), mustPrepare(t, m, samples[1])
	c := m.Model.Config
	opt := PatchOptions{Grid: GridHeads, Metric: "logit", A: -1}
	var calls []int
	if _, err := Patch(m.Model, clean.Pixels, corrupt.Pixels, opt, func(done, total int) bool {
		if total != c.Depth*c.Heads {
			t.Fatalf("total %d, want %d", total, c.Depth*c.Heads)
		}
		calls = append(calls, done)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	for i, d := range calls {
		if d != i+1 || len(calls) != c.Depth*c.Heads {
			t.Fatalf("progress calls %v", calls)
		}
	}
	n := 0
	_, err := Patch(m.Model, clean.Pixels, corrupt.Pixels, opt, func(done, total int) bool { n++; return done < 3 })
	if !errors.Is(err, ErrPatchStopped) || n != 3 {
		t.Errorf("stopped after %d cells: %v", n, err)
	}
}

// Bad choices are errors that say what to change, not a panic.
func TestPatchBadOptions(t *testing.T) {
	m, samples := demoSamples(t)
	clean, corrupt := mustPrepare(t, m, samples[0]), mustPrepare(t, m, samples[1])
	for _, tc := range []struct {
		opt  PatchOptions
		want string
	}{
		{PatchOptions{Grid: "mlp", Metric: "logit", A: -1}, "unknown patching map"},
		{PatchOptions{Grid: GridHeads, Metric: "prob", A: -1}, "want logit_diff"},
		{PatchOptions{Grid: GridHeads, Metric: "logit", A: 99}, "not a class index"},
		{PatchOptions{Grid: GridHeads, Metric: "logit_diff", A: 4, B: 4}, "with itself"},
	} {
		if _, err := Patch(m.Model, clean.Pixels, corrupt.Pixels, tc.opt, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.opt, err, tc.want)
		}
	}
}

// The activations file holds every hook's value as the forward computes it,
// [1, tokens, ...], and the image's id.
func TestActivationsFile(t *testing.T) {
	m, samples := demoSamples(t)
	in := mustPrepare(t, m, samples[0])
	data, err := ActivationsFile(m.Model, in.Pixels, samples[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "a.safetensors")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := vittest.OpenGolden(path)
	if err != nil {
		t.Fatal(err)
	}
	hooks := m.Model.Config.Hooks()
	fns, cache := vit.CacheHooks(hooks)
	if _, err := m.Model.Forward(in.Pixels, vit.Options{Hooks: fns}); err != nil {
		t.Fatal(err)
	}
	for _, h := range hooks {
		got, want := g.MustTensor(t, h.Name()), cache[h]
		if got.Shape[0] != 1 || len(got.Data) != len(want.Data) {
			t.Fatalf("%s: shape %v, the forward's %v", h.Name(), got.Shape, want.Shape)
		}
		for i, v := range got.Data {
			if v != want.Data[i] {
				t.Fatalf("%s[%d]: %g, the forward's %g", h.Name(), i, v, want.Data[i])
			}
		}
	}
	if !strings.Contains(g.Meta["ids"], samples[0].Name) {
		t.Errorf("ids %q", g.Meta["ids"])
	}
}

// demoSamples is the demo model and its sample images.
func demoSamples(t *testing.T) (*Model, []*Image) {
	t.Helper()
	m, err := LoadDemo(public.Files)
	if err != nil {
		t.Fatal(err)
	}
	samples, err := Samples(public.Files)
	if err != nil || len(samples) < 2 {
		t.Fatalf("samples: %d, %v", len(samples), err)
	}
	return m, samples
}

// BenchmarkPatch is one map of the demo model per grid (blocks × heads:
// 24 patches; blocks × tokens: 102), the page's cost of choosing one. It
// reads the demo from the folder, not public.Files, so that it also runs as
// js/wasm under Node (the browser's build embeds no model):
// GOOS=js GOARCH=wasm go test -exec go_js_wasm_exec -bench BenchmarkPatch.
func BenchmarkPatch(b *testing.B) {
	files := os.DirFS(filepath.Join("..", "..", "public"))
	m, err := LoadDemo(files)
	if err != nil {
		b.Fatal(err)
	}
	samples, err := Samples(files)
	if err != nil {
		b.Fatal(err)
	}
	clean, err := m.Prepare(samples[0])
	if err != nil {
		b.Fatal(err)
	}
	corrupt, err := m.Prepare(samples[1])
	if err != nil {
		b.Fatal(err)
	}
	for _, g := range PatchGrids {
		b.Run(string(g), func(b *testing.B) {
			for b.Loop() {
				if _, err := Patch(m.Model, clean.Pixels, corrupt.Pixels, PatchOptions{Grid: g, Metric: "logit_diff", A: -1, B: -1}, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
