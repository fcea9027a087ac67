package vittest

import (
	"slices"
	"testing"
)

func TestGoldenReadsEveryKind(t *testing.T) {
	g := Load(t, "tiny")
	cfg, err := g.Config()
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.NumTokens()
	for _, c := range []struct {
		name  string
		shape []int
	}{
		{"input.0", []int{3, 32, 32}},
		{"logits.1", []int{cfg.Classes}},
		{"embed.0", []int{n, cfg.Dim}},
		{"attn_probs.1.0", []int{cfg.Heads, n, n}},
		{"values.0.1", []int{cfg.Heads, n, cfg.HeadDim()}},
		{"fc1.1.1", []int{n, cfg.MLPDim}},
		{"lens.hs_mid.0.0", []int{n, cfg.Classes}},
	} {
		if got := g.MustTensor(t, c.name).Shape; !slices.Equal(got, c.shape) {
			t.Errorf("%s: shape %v, want %v", c.name, got, c.shape)
		}
	}
	keep, err := g.Int64s("keep.tokens.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(keep) != 1+(n-1)/2 || keep[0] != 0 {
		t.Errorf("keep.tokens.0 = %v, want [CLS] plus half the patches", keep)
	}
	if _, err := g.Tensor("keep.tokens.0"); err == nil {
		t.Error("reading an I64 tensor as F32 should fail")
	}
	if _, err := g.Tensor("no.such"); err == nil {
		t.Error("a missing tensor should be an error")
	}
}

// The lens of the last block's [CLS] is the model's own prediction.
func TestGoldenLensOfLastCLSIsLogits(t *testing.T) {
	g := Load(t, "odd")
	lens := g.MustTensor(t, "lens.hs.2.1")
	logits := g.MustTensor(t, "logits.1")
	if d := MaxAbsDiff(lens.Row(0), logits.Data); d > 1e-5 {
		t.Errorf("lens.hs.2.1[0] differs from logits.1 by %g", d)
	}
}
