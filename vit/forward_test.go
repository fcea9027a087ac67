package vit

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Recording activations changes nothing the forward returns, and what it
// records is what the taps see at the same places: the block input is the
// previous block's output, Mid is hs_mid, FC1 the fc1 tap, Probs the
// attention tap, and the recording run's own taps are the plain run's. For a post-norm model the updates are read before their
// norm, so the attn/mlp taps are their LayerNorms.
func TestForwardRecordsWhatTapsSee(t *testing.T) {
	for _, post := range []bool{false, true} {
		c := Config{ImageSize: 12, PatchSize: 4, Channels: 3, Dim: 8, Depth: 3, Heads: 2, MLPDim: 16, Classes: 5,
			QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: PoolCLS, PostNorm: post}
		m, err := NewRandom(c, 11)
		if err != nil {
			t.Fatal(err)
		}
		px := &Tensor{Shape: []int{3, 12, 12}, Data: randSlice(rand.New(rand.NewPCG(5, 6)), 3*12*12)}
		taps := Taps{Embed: true, Sites: [NumSites]bool{true, true, true, true}, AttnProbs: true, FC1: true, Heads: true}
		keep := []int{0, 2, 3, 7, 9}
		plain, err := m.Forward(px, Options{Taps: taps, Keep: keep})
		if err != nil {
			t.Fatal(err)
		}
		var acts Activations
		rec, err := m.Forward(px, Options{Taps: taps, Keep: keep, Record: &acts})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(plain.Logits, rec.Logits) || !slices.Equal(acts.Logits, plain.Logits) {
			t.Fatalf("post=%v: recording changed the logits", post)
		}
		if !slices.Equal(acts.Tokens, keep) || len(acts.Blocks) != c.Depth {
			t.Fatalf("post=%v: recorded tokens %v and %d blocks", post, acts.Tokens, len(acts.Blocks))
		}
		n, d := len(keep), c.Dim
		for b, a := range acts.Blocks {
			in := plain.Embed.Data
			if b > 0 {
				in = plain.Site(SiteHS, b-1).Data
			}
			same := func(what string, got, want []float32) {
				if !slices.Equal(got, want) {
					t.Errorf("post=%v block %d: recorded %s differs from the taps", post, b, what)
				}
			}
			same("input", a.In, in)
			same("mid", a.Mid, plain.Site(SiteHSMid, b).Data)
			same("fc1", a.FC1, plain.FC1[b].Data)
			same("probs", a.Probs.Data, plain.AttnProbs[b].Data)
			same("heads", a.Heads, plain.Heads[b].Data)
			// The recording run's taps share the recording's copies: still
			// what the plain run taps.
			same("fc1 tap while recording", rec.FC1[b].Data, plain.FC1[b].Data)
			same("heads tap while recording", rec.Heads[b].Data, plain.Heads[b].Data)
			attn, mlp := a.AttnOut, a.MLPOut
			if post {
				attn, mlp = make([]float32, n*d), make([]float32, n*d)
				LayerNorm(attn, a.AttnOut, n, d, m.Blocks[b].Norm1, c.LNEps)
				LayerNorm(mlp, a.MLPOut, n, d, m.Blocks[b].Norm2, c.LNEps)
			}
			same("attention update", attn, plain.Site(SiteAttn, b).Data)
			same("mlp update", mlp, plain.Site(SiteMLP, b).Data)
			if len(a.QKV) != n*3*d {
				t.Errorf("post=%v block %d: qkv has %d values", post, b, len(a.QKV))
			}
		}
		if !slices.Equal(acts.Pooled, plain.Site(SiteHS, c.Depth-1).Data[:d]) {
			t.Errorf("post=%v: recorded pooled vector is not the [CLS] row of the last block", post)
		}
	}
}

// The input checks every backend shares.
func TestForwardRejectsBadInputs(t *testing.T) {
	c := Config{ImageSize: 8, PatchSize: 4, Channels: 3, Dim: 8, Depth: 1, Heads: 2, MLPDim: 16, Classes: 5,
		LNEps: 1e-6, ClassToken: true, Pool: PoolCLS}
	m, err := NewRandom(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	gap := c
	gap.ClassToken, gap.Pool = false, PoolMean
	mg, err := NewRandom(gap, 1)
	if err != nil {
		t.Fatal(err)
	}
	dist := c
	dist.DistToken = true
	md, err := NewRandom(dist, 1)
	if err != nil {
		t.Fatal(err)
	}
	px := NewTensor(3, 8, 8)
	for _, tc := range []struct {
		m    *Model
		px   *Tensor
		opt  Options
		want string
	}{
		{m, NewTensor(3, 4, 4), Options{}, "input is [3 4 4], model wants 3×8×8"},
		{m, nil, Options{}, "input is [], model wants 3×8×8"},
		{m, px, Options{Keep: []int{}}, "token selection keeps no tokens"},
		{m, px, Options{Keep: []int{1, 0}}, "must keep the [CLS] token (0) first"},
		{m, px, Options{Keep: []int{0, 5}}, "token 5 out of range 0..4"},
		{m, px, Options{Keep: []int{0, 2, 2}}, "token 2 kept twice"},
		{m, px, Options{Edit: "everything"}, `unknown attention edit "everything"`},
		{mg, px, Options{Edit: EditNoCLS}, `attention edit "no_cls" needs a [CLS] token`},
		{md, px, Options{Keep: []int{0, 2, 3}}, "must keep the distillation token (1) second"},
	} {
		if _, err := tc.m.Forward(tc.px, tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.opt, err, tc.want)
		}
	}
}

// Sequence layout in timm's order: [CLS], then the distillation token or
// the registers, then the patches; only patches are image tokens.
func TestTokenKinds(t *testing.T) {
	base := Config{ImageSize: 8, PatchSize: 4, Channels: 3, Dim: 8, Depth: 1, Heads: 2, MLPDim: 16, Classes: 5,
		LNEps: 1e-6, ClassToken: true, Pool: PoolCLS}
	dist, regs, gap := base, base, base
	dist.DistToken = true
	regs.Registers = 2
	gap.ClassToken, gap.Pool = false, PoolMean
	for _, tc := range []struct {
		c    Config
		want []TokenKind
	}{
		{base, []TokenKind{KindCLS, KindPatch, KindPatch, KindPatch, KindPatch}},
		{dist, []TokenKind{KindCLS, KindDist, KindPatch, KindPatch, KindPatch, KindPatch}},
		{regs, []TokenKind{KindCLS, KindRegister, KindRegister, KindPatch, KindPatch, KindPatch, KindPatch}},
		{gap, []TokenKind{KindPatch, KindPatch, KindPatch, KindPatch}},
	} {
		if tc.c.NumTokens() != len(tc.want) {
			t.Fatalf("%+v: %d tokens, want %d", tc.c, tc.c.NumTokens(), len(tc.want))
		}
		first := -1
		for tok, k := range tc.want {
			if got := tc.c.TokenKind(tok); got != k {
				t.Errorf("%+v token %d: %s, want %s", tc.c, tok, got, k)
			}
			if k == KindPatch && first < 0 {
				first = tok
			}
		}
		if tc.c.FirstImageToken() != first {
			t.Errorf("%+v: first image token %d, want %d", tc.c, tc.c.FirstImageToken(), first)
		}
		m, err := NewRandom(tc.c, 2)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := m.Forward(NewTensor(3, 8, 8), Options{Taps: Taps{Embed: true}})
		if err != nil {
			t.Fatal(err)
		}
		// Every prefix token enters block 0 as its learned vector plus its position row.
		d := tc.c.Dim
		prefix := append(append(append([]float32{}, m.ClsToken...), m.DistToken...), m.RegTokens...)
		for i, v := range prefix {
			if want := v + m.PosEmbed[i]; tr.Embed.Data[i] != want {
				t.Fatalf("%+v: embed[%d] = %g, want %g", tc.c, i, tr.Embed.Data[i], want)
			}
		}
		if len(prefix) != first*d {
			t.Errorf("%+v: %d prefix values, want %d", tc.c, len(prefix), first*d)
		}
	}
	bad := dist
	bad.Registers = 1
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "dist_token needs a class token and no registers") {
		t.Errorf("distillation token with registers: %v", err)
	}
}
