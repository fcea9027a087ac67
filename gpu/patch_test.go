package gpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"vitlens/vit"
	"vitlens/vit/patching"
	"vitlens/vit/vittest"
)

// patchCase: patch.wgsl on a batch whose images patch hook h at a whole
// layer, one token, one head and one head at one position (as the hook
// allows), plus one image that patches another hook and one that patches
// nothing, against patching.Site.Elements (the CPU forward's selection)
// written into the plan buffer's layout.
func patchCase(c vit.Config, point vit.HookPoint) func(testing.TB, *harness, *program) []output {
	return func(tb testing.TB, h *harness, p *program) []output {
		n := c.NumTokens()
		hook := vit.Hook{Point: point, Block: 1}
		l, ok := patchLayoutOf(c, hook, n)
		if !ok {
			tb.Fatalf("%s not patchable", hook)
		}
		sites := []patching.Site{{Hook: hook, Head: -1, Token: -1}, {Hook: hook, Head: -1, Token: 2}}
		if point.HasHeads() {
			sites = append(sites, patching.Site{Hook: hook, Head: 1, Token: -1}, patching.Site{Hook: hook, Head: 2, Token: n - 1})
		}
		const hookID, otherID = 1, 0
		var sel []uint32
		for _, s := range sites {
			sel = append(sel, hookID, uint32(int32(s.Head)), uint32(int32(s.Token)))
		}
		sel = append(sel, otherID, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
		B := len(sel) / 3
		rng := rand.New(rand.NewPCG(9, uint64(point)))
		per := l.rows * l.rowStride
		dst := randn(rng, B*per, 1, 0)
		const srcOff = 5 // the replacement does not start at word 0
		src := randn(rng, srcOff+l.rows*l.width, 1, 0)
		want := slices.Clone(dst)
		for b, s := range sites {
			s.Elements(c.HookShape(hook, n), func(e int) {
				want[(b*l.rows+e/l.width)*l.rowStride+l.colOff+e%l.width] = src[srcOff+e]
			})
		}
		d := h.in(tb, p, "dst", dst)
		if err := p.patch("patch", d, h.in(tb, p, "src", src), h.inWords(tb, p, "sel", sel), B, l, hookID, srcOff); err != nil {
			tb.Fatal(err)
		}
		return []output{{"out", d, B * per, near(want)}}
	}
}

// patternValuesCase: pattern_values.wgsl against vit.HeadsFromPattern on
// random values and a random (unnormalised) pattern, two images.
func patternValuesCase(n, H, dh int) func(testing.TB, *harness, *program) []output {
	return func(tb testing.TB, h *harness, p *program) []output {
		const B = 2
		rng := rand.New(rand.NewPCG(10, uint64(n*H*dh)))
		d := H * dh
		qkv, probs := randn(rng, B*n*3*d, 1, 0), randn(rng, B*H*n*n, 0.3, 0.1)
		var want []float32
		for b := 0; b < B; b++ {
			out := make([]float32, n*d)
			pat := &vit.Tensor{Shape: []int{H, n, n}, Data: probs[b*H*n*n : (b+1)*H*n*n]}
			vit.HeadsFromPattern(out, qkv[b*n*3*d:(b+1)*n*3*d], pat, n, H, dh)
			want = append(want, out...)
		}
		out := h.out(tb, p, "out", B*n*d)
		if err := p.patternValues("pattern_values", out, h.in(tb, p, "qkv", qkv), h.in(tb, p, "probs", probs), B, n, H, dh); err != nil {
			tb.Fatal(err)
		}
		return []output{{"out", out, B * n * d, near(want)}}
	}
}

// patchTol bounds a GPU patching metric (a logit or a difference of two)
// against the CPU's and torch's: |gpu − ref| ≤ patchTol·max(1, |ref|). The
// forward's logits agree within modelTol each, a difference of two within
// twice that.
const patchTol = 2 * modelTol

// TestPatchingMatchesCPUAndTorch runs the torch reference's patches
// (tools/reference/make_hooks_golden.py: whole layers at every hook, single
// tokens, single heads, one head at one position, zero ablations of heads)
// through the GPU backend, the patched hooks' sites mixed in shared batches,
// and compares every metric with patching.CPU's and torch's.
func TestPatchingMatchesCPUAndTorch(t *testing.T) {
	for _, name := range []string{"tiny", "odd", "ls_reg"} {
		t.Run(name, func(t *testing.T) {
			g := vittest.Load(t, name, "hooks.safetensors")
			m := vittest.LoadTimmModel(t, name)
			c := m.Config
			metric, err := patching.ParseMetric(g.Meta["metric"], c.Classes)
			if err != nil {
				t.Fatal(err)
			}
			clean, corrupt := g.MustTensor(t, "input.0"), g.MustTensor(t, "input.1")
			b := newBackend(t, m)
			r := patching.Run{Model: m, Metric: metric, Mode: patching.ModePatch}
			src, cl, err := r.Cache(clean, c.Hooks())
			if err != nil {
				t.Fatal(err)
			}
			_, co, err := r.Cache(corrupt, c.Hooks())
			if err != nil {
				t.Fatal(err)
			}
			cm, base := metric.Value(cl), metric.Value(co)

			// The golden's cases, by mode: each site with torch's metric.
			type want struct {
				site  patching.Site
				torch float64
			}
			cases := map[patching.Mode][]want{}
			for _, key := range g.Names() {
				mode, per, hook, ok := patchGoldenKey(key)
				if !ok {
					continue
				}
				hooks := c.Hooks()
				if hook != "" {
					h, err := c.ParseHook(hook)
					if err != nil {
						t.Fatal(err)
					}
					hooks = []vit.Hook{h}
				}
				sites, err := patching.Sites(c, hooks, per, c.NumTokens())
				if err != nil {
					t.Fatal(err)
				}
				vals := g.MustTensor(t, key).Data
				for i, s := range sites {
					if b.CheckPatchable([]patching.Site{s}) != nil {
						continue // hook_embed, hook_pos_embed: the CPU's alone
					}
					cases[mode] = append(cases[mode], want{s, float64(vals[i])})
				}
			}
			if len(cases[patching.ModePatch]) == 0 || len(cases[patching.ModeZero]) == 0 {
				t.Fatalf("the golden has no patching cases: %v", g.Names())
			}
			for _, mode := range []patching.Mode{patching.ModePatch, patching.ModeZero} {
				var sites []patching.Site
				for _, w := range cases[mode] {
					sites = append(sites, w.site)
				}
				r.Mode = mode
				gpuRun := r
				gpuRun.Patcher = b
				got, err := gpuRun.Patch(corrupt, sites, src, cm, base)
				if err != nil {
					t.Fatal(err)
				}
				ref, err := r.Patch(corrupt, sites, src, cm, base)
				if err != nil {
					t.Fatal(err)
				}
				worst := 0.0
				for i, w := range cases[mode] {
					g, cpu := got[i].Metric, ref[i].Metric
					worst = math.Max(worst, math.Abs(g-cpu)/math.Max(1, math.Abs(cpu)))
					if math.Abs(g-cpu) > patchTol*math.Max(1, math.Abs(cpu)) || math.Abs(g-w.torch) > patchTol*math.Max(1, math.Abs(w.torch)) {
						t.Errorf("%s %s head %d token %d: gpu %g, cpu %g, torch %g", mode, w.site.Hook, w.site.Head, w.site.Token, g, cpu, w.torch)
					}
				}
				t.Logf("%s: %d patches, largest |gpu − cpu|/max(1,|cpu|) %.2e", mode, len(sites), worst)
			}
		})
	}
}

// patchGoldenKey reads a key of hooks.safetensors: "patch.layer" (every
// hook), "patch.token.HOOK", "patch.head.HOOK", "patch.position.HOOK",
// "zero.head.HOOK".
func patchGoldenKey(key string) (mode patching.Mode, per patching.Per, hook string, ok bool) {
	if key == "patch.layer" {
		return patching.ModePatch, patching.PerLayer, "", true
	}
	kind, rest, found := strings.Cut(key, ".")
	if !found || (kind != "patch" && kind != "zero") {
		return "", "", "", false
	}
	cut, hook, found := strings.Cut(rest, ".")
	if !found || !slices.Contains(patching.Pers, patching.Per(cut)) {
		return "", "", "", false
	}
	return patching.Mode(kind), patching.Per(cut), hook, true
}

// TestPatchingRefusesEmbedHooks: the hooks the GPU forward cannot patch are
// refused by name, never run unpatched.
func TestPatchingRefusesEmbedHooks(t *testing.T) {
	m := randomModel(t, cfgCLS, 1)
	b := newBackend(t, m)
	img := vit.NewTensor(3, 16, 16)
	_, err := b.PatchLogits(img, []patching.Site{{Hook: vit.Hook{Point: vit.HookPosEmbed}, Head: -1, Token: 0}}, nil, vit.EditNone)
	if err == nil || !strings.Contains(err.Error(), "patching at hook_pos_embed is not supported on the GPU backend") {
		t.Fatalf("patching hook_pos_embed on the GPU: %v, want an error naming the hook", err)
	}
}

// TestPatchingPostNormAndEdits: what the torch fixtures do not cover, against
// patching.CPU: a post-norm mean-pooled model (its sublayer outputs are
// normed before the addition) patched at every patchable hook, and an
// attention edit under head patches of the pattern and z.
func TestPatchingPostNormAndEdits(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    vit.Config
		per  patching.Per
		pat  string
		edit vit.AttnEdit
	}{
		{"postnorm/layer", cfgGAP, patching.PerLayer, "blocks.1.*", vit.EditNone},
		{"no_cls/head", cfgCLS, patching.PerHead, "blocks.0.attn.hook_pattern,blocks.2.attn.hook_z", vit.EditNoCLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := randomModel(t, tc.c, 3)
			b := newBackend(t, m)
			c := m.Config
			rng := rand.New(rand.NewPCG(4, 4))
			img := func() *vit.Tensor {
				x := vit.NewTensor(c.Channels, c.ImageSize, c.ImageSize)
				copy(x.Data, randn(rng, len(x.Data), 1, 0))
				return x
			}
			clean, corrupt := img(), img()
			hooks, err := c.MatchHooks(tc.pat)
			if err != nil {
				t.Fatal(err)
			}
			sites, err := patching.Sites(c, hooks, tc.per, c.NumTokens())
			if err != nil {
				t.Fatal(err)
			}
			r := patching.Run{Model: m, Metric: patching.Metric{Kind: "logit", A: 1}, Mode: patching.ModePatch, Edit: tc.edit}
			src, _, err := r.Cache(clean, hooks)
			if err != nil {
				t.Fatal(err)
			}
			want, err := patching.CPU{Model: m}.PatchLogits(corrupt, sites, src, tc.edit)
			if err != nil {
				t.Fatal(err)
			}
			got, err := b.PatchLogits(corrupt, sites, src, tc.edit)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range sites {
				for j, w := range want[i] {
					if math.Abs(float64(got[i][j]-w)) > modelTol*math.Max(1, math.Abs(float64(w))) {
						t.Fatalf("%s head %d token %d: logit %d gpu %g, cpu %g", s.Hook, s.Head, s.Token, j, got[i][j], w)
					}
				}
			}
		})
	}
}
