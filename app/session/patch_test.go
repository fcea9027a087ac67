package session

import (
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

// The heads × blocks map and a clicked cell say what vit/patching says for
// the same pair: the logit of the clean image's class, and its rank.
func TestPatchHeads(t *testing.T) {
	m, samples := demoSamples(t)
	clean, corrupt := mustPrepare(t, m, samples[0]), mustPrepare(t, m, samples[1])
	hp, err := PatchHeads(m.Model, clean.Pixels, corrupt.Pixels)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Model.Config
	if len(hp.Effect) != c.Depth || len(hp.Effect[0]) != c.Heads || hp.CorruptRank == 0 || hp.CleanRank != 0 {
		t.Fatalf("%d × %d effects, ranks clean %d corrupted %d", len(hp.Effect), len(hp.Effect[0]), hp.CleanRank, hp.CorruptRank)
	}
	hooks, _ := c.MatchHooks("blocks.*.attn.hook_z")
	sites, _ := patching.Sites(c, hooks, patching.PerHead, c.NumTokens())
	for _, metric := range []string{"logit", "rank"} {
		r := patching.Run{Model: m.Model, Mode: patching.ModePatch, Metric: patching.Metric{Kind: metric, A: hp.Target}}
		src, _, err := r.Cache(clean.Pixels, hooks)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Patch(corrupt.Pixels, sites, src, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range res {
			rank, logit, err := hp.Cell(p.Hook.Block, p.Head)
			if err != nil {
				t.Fatal(err)
			}
			got := logit
			if metric == "rank" {
				got = float64(rank)
			}
			if math.Abs(got-p.Metric) > 1e-9*math.Max(1, math.Abs(p.Metric)) {
				t.Fatalf("block %d head %d %s: %g, vit/patching %g", p.Hook.Block, p.Head, metric, got, p.Metric)
			}
		}
	}
	if _, _, err := hp.Cell(c.Depth, 0); err == nil {
		t.Error("a block out of range gave no error")
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
