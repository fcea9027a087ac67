package vit_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"vitlens/vit"
	"vitlens/vit/vittest"
)

func TestHookNamesRoundTrip(t *testing.T) {
	c := vittest.SmallConfig
	hooks := c.Hooks()
	if len(hooks) != 2+12*c.Depth {
		t.Fatalf("%d hooks for %d blocks", len(hooks), c.Depth)
	}
	for _, h := range hooks {
		got, err := c.ParseHook(h.Name())
		if err != nil || got != h {
			t.Errorf("%s parses to %v, %v", h.Name(), got, err)
		}
	}
	for name, want := range map[string]vit.Hook{
		"blocks.2.hs":                {Point: vit.HookResidPost, Block: 2},
		"blocks.0.attn_probs":        {Point: vit.HookPattern},
		"blocks.1.mlp.hook_post":     {Point: vit.HookMLPPost, Block: 1},
		"hook_pos_embed":             {Point: vit.HookPosEmbed},
		"blocks.1.attn.hook_pattern": {Point: vit.HookPattern, Block: 1},
	} {
		if got, err := c.ParseHook(name); err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", name, got, err, want)
		}
	}
	for name, says := range map[string]string{
		"blocks.3.hook_resid_pre": "block 3 out of range 0..2",
		"blocks.x.hook_z":         "B a block number",
		"resid_pre":               "vitlens hooks lists them",
		"blocks.0.hook_nothing":   `no point "hook_nothing"`,
	} {
		if _, err := c.ParseHook(name); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: error %v, want one saying %q", name, err, says)
		}
	}
}

func TestMatchHooks(t *testing.T) {
	c := vittest.SmallConfig
	for pat, want := range map[string]string{
		"blocks.*.attn.hook_z":                   "[blocks.0.attn.hook_z blocks.1.attn.hook_z blocks.2.attn.hook_z]",
		"*resid_post":                            "[blocks.0.hook_resid_post blocks.1.hook_resid_post blocks.2.hook_resid_post]",
		"blocks.*.hs":                            "[blocks.0.hook_resid_post blocks.1.hook_resid_post blocks.2.hook_resid_post]",
		"blocks.2.hook_mlp_out, hook_embed":      "[hook_embed blocks.2.hook_mlp_out]",
		"blocks.1.*, blocks.1.attn.hook_q":       fmt.Sprint(c.Hooks()[2+12 : 2+24]),
		"blocks.0.attn.hook_?,blocks.0.hook_z":   "",
		"blocks.*.attn.hook_q,blocks.0.*hook_q*": "[blocks.0.attn.hook_q blocks.1.attn.hook_q blocks.2.attn.hook_q]",
	} {
		got, err := c.MatchHooks(pat)
		if want == "" {
			if err == nil {
				t.Errorf("%q matched %v, want an error", pat, got)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("%q: %v, %v; want %s", pat, got, err, want)
		}
	}
	if _, err := c.MatchHooks("blocks.*.nothing"); err == nil || !strings.Contains(err.Error(), "matches no hook") {
		t.Errorf("a pattern matching nothing: %v", err)
	}
}

func randomImage(c vit.Config, seed uint64) *vit.Tensor {
	x := vit.NewTensor(c.Channels, c.ImageSize, c.ImageSize)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	return x
}

// A hook at every point that writes back what it read leaves the output
// alone, and every shape is HookShape's: q/k/v's gather and scatter and the
// pattern's recomputed product (HeadsFromPattern, the slow twin of the
// attention kernel's) included.
func TestHooksThatWriteBackChangeNothing(t *testing.T) {
	m := vittest.SharpModel(t)
	x := randomImage(m.Config, 7)
	plain, err := m.Forward(x, vit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fns := vit.HookFuncs{}
	n := m.Config.NumTokens()
	for _, h := range m.Config.Hooks() {
		fns[h] = func(h vit.Hook, act *vit.Tensor) {
			if want := m.Config.HookShape(h, n); fmt.Sprint(want) != fmt.Sprint(act.Shape) || len(act.Data) != act.Numel() {
				t.Errorf("%s: shape %v with %d values, HookShape %v", h.Name(), act.Shape, len(act.Data), want)
			}
			copy(act.Data, append([]float32(nil), act.Data...))
		}
	}
	hooked, err := m.Forward(x, vit.Options{Hooks: fns})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range plain.Logits {
		if d := math.Abs(float64(v - hooked.Logits[i])); d > 1e-5*math.Max(1, math.Abs(float64(v))) {
			t.Errorf("logit %d: %g hooked, %g plain", i, hooked.Logits[i], v)
		}
	}
}

// A write at a hook reaches the output: with the last block's stream zeroed
// the final norm outputs its bias, so every logit is W_c·β + b_c.
func TestHookWriteReachesTheOutput(t *testing.T) {
	m := vittest.SharpModel(t)
	c := m.Config
	last := vit.Hook{Point: vit.HookResidPost, Block: c.Depth - 1}
	tr, err := m.Forward(randomImage(c, 3), vit.Options{Hooks: vit.HookFuncs{last: func(_ vit.Hook, act *vit.Tensor) { clear(act.Data) }}})
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < c.Classes; k++ {
		want := float64(m.Head.B[k])
		for i := 0; i < c.Dim; i++ {
			want += float64(m.Head.At(k, i)) * float64(m.Norm.B[i])
		}
		if d := math.Abs(float64(tr.Logits[k]) - want); d > 1e-5*math.Max(1, math.Abs(want)) {
			t.Errorf("class %d: %g, want W·β+b = %g", k, tr.Logits[k], want)
		}
	}
}
