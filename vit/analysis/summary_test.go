package analysis

import (
	"math"
	"testing"

	"vitlens/vit"
)

// Two hand-made images, 2 blocks, [CLS] + 2 image tokens, 4 classes: every
// statistic below is computed by hand from these numbers.
func handImages() []*Image {
	sites := vit.AllSites()
	a := NewImage(sites, 2, 3)
	a.Image, a.Label, a.Correct, a.HasCLS, a.Tokens = 0, 1, true, true, []int{0, 1, 2}
	a.PatchLabels = []int8{LabelUnknown, LabelClass, LabelContext}
	a.Rank[vit.SiteHS] = [][]int32{{2, 3, 1}, {0, 0, 2}}
	a.Logit[vit.SiteHS] = [][]float32{{1, 1, 1}, {2, 1, 0}} // image tokens: 1→1 (tie, no increase), 1→0
	a.Logit[vit.SiteAttn] = [][]float32{{0, 0, 0}, {3, 0, 2}}
	a.Logit[vit.SiteMLP] = [][]float32{{0, 0, 0}, {0, 5, 0}}
	a.Top1[vit.SiteHS] = [][]int32{{0, 2, 3}, {1, 1, 3}}
	a.Top1[vit.SiteAttn] = [][]int32{{0, 0, 0}, {1, 0, 0}}
	a.Top1[vit.SiteMLP] = [][]int32{{0, 0, 0}, {2, 1, 0}}

	b := NewImage(sites, 2, 3)
	b.Image, b.Label, b.Correct, b.HasCLS, b.Tokens = 1, 2, false, true, []int{0, 1, 2}
	b.PatchLabels = []int8{LabelUnknown, LabelContext, LabelClass}
	b.Rank[vit.SiteHS] = [][]int32{{0, 2, 2}, {1, 3, 1}}
	b.Logit[vit.SiteHS] = [][]float32{{0, 0, 0}, {1, 1, -1}}
	b.Logit[vit.SiteAttn] = [][]float32{{0, 0, 0}, {-1, 0, 0}}
	b.Logit[vit.SiteMLP] = [][]float32{{0, 0, 0}, {1, 1, 1}}
	b.Top1[vit.SiteHS] = [][]int32{{2, 0, 0}, {0, 0, 1}}
	b.Top1[vit.SiteAttn] = [][]int32{{0, 0, 0}, {0, 0, 2}}
	b.Top1[vit.SiteMLP] = [][]int32{{0, 0, 0}, {3, 3, 3}}
	return []*Image{a, b}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestSummaryByHand(t *testing.T) {
	s := NewSummary(4, 2, PairNone)
	for _, im := range handImages() {
		if err := s.Add(im); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.Finish(Options{Permutation: 100, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got, want float64) {
		t.Helper()
		if !near(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("accuracy", r.Accuracy, 0.5)
	// Last block, image tokens: a has ranks {0,2} → 1/2; b has {3,1} → 0.
	check("identifiable token share", r.IdentifiableTokenShare, 0.25)
	check("images with one", r.ImagesWithIdentToken, 0.5)
	b0, b1 := r.Blocks[0], r.Blocks[1]
	// [CLS] identifiability 1 − rank/4: block 0 ranks 2, 0; block 1 ranks 0, 1.
	check("cls ident b0", b0.CLSIdent, (0.5+1)/2)
	check("cls ident b1", b1.CLSIdent, (1+0.75)/2)
	check("img ident b1", b1.ImageIdent, (1+0.5+0.25+0.75)/4)
	check("cls top1 b1", b1.CLSTop1, 0.5)
	check("img top1 b1", b1.ImageTop1, 0.25)
	// Change rate, image tokens, strict: a: 1→1 no, 1→0 no; b: 0→1 yes, 0→−1 no.
	check("change b1", b1.ChangeRate, 0.25)
	if !math.IsNaN(b0.ChangeRate) {
		t.Errorf("block 0 has no previous block, change rate %v", b0.ChangeRate)
	}
	// Sublayers against the block input hs_0: [CLS] a: 3>1 yes, b: −1>0 no;
	// image a: 0>1 no, 2>1 yes; b: 0>0 no, 0>0 no.
	check("attn cls", b1.AttnCLS, 0.5)
	check("attn img", b1.AttnImage, 0.25)
	// MLP [CLS] a: 0>1 no, b: 1>0 yes; image a: 5>1 yes, 0>1 no; b: 1>0 yes, 1>0 yes.
	check("mlp cls", b1.MLPCLS, 0.5)
	check("mlp img", b1.MLPImage, 0.75)
	// Top-1 composition over all 6 tokens of block 1:
	// a: hs {1,1,3} attn {1,0,0} mlp {2,1,0} prev {0,2,3}; b: hs {0,0,1} attn {0,0,2} mlp {3,3,3} prev {2,0,0}.
	check("=attn", b1.MatchAttn, 3.0/6)
	check("=mlp", b1.MatchMLP, 1.0/6)
	check("=prev", b1.MatchPrev, 2.0/6)
	check("=none", b1.MatchNone, 1.0/6)
	// Class minus context at block 1: class tokens a1 (1), b2 (0.75); context a2 (0.5), b1 (0.25).
	check("class-context", b1.ClassMinusCtx, 0.875-0.375)
	if b1.ClassCtxP < 0 || b1.ClassCtxP > 1 {
		t.Errorf("permutation p %v", b1.ClassCtxP)
	}
}

// Without [CLS] every token is an image token (the original dropped token 0
// of the GAP model, A6).
func TestSummaryWithoutCLS(t *testing.T) {
	im := NewImage([]vit.Site{vit.SiteHS}, 1, 2)
	im.Tokens = []int{0, 1}
	im.Rank[vit.SiteHS] = [][]int32{{0, 1}}
	s := NewSummary(4, 1, PairNone)
	if err := s.Add(im); err != nil {
		t.Fatal(err)
	}
	r, err := s.Finish(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !near(r.IdentifiableTokenShare, 0.5) || !math.IsNaN(r.Blocks[0].CLSIdent) {
		t.Fatalf("report %+v", r)
	}
}

func TestWilcoxonAgainstRandom(t *testing.T) {
	mk := func(rank int32) *Summary {
		s := NewSummary(4, 1, PairAllTokens)
		for i := 0; i < 30; i++ {
			im := NewImage([]vit.Site{vit.SiteHS}, 1, 2)
			im.HasCLS, im.Tokens = true, []int{0, 1}
			im.Rank[vit.SiteHS] = [][]int32{{0, rank + int32(i%2)}}
			if err := s.Add(im); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	r, err := mk(0).Finish(Options{Random: mk(2)})
	if err != nil {
		t.Fatal(err)
	}
	if p := r.Blocks[0].VsRandomP; !(p < 1e-6) {
		t.Fatalf("a model always better than random should have a tiny p, got %v", p)
	}
	if _, err := mk(0).Finish(Options{Random: NewSummary(4, 1, PairAllTokens)}); err == nil {
		t.Fatal("pairing runs over different images must fail")
	}
}

// A distillation token or register (Image.Extra) is neither [CLS] nor an
// image token: adding one, with ranks and logits that would move every
// image statistic, leaves the [CLS] and image-token columns unchanged.
func TestExtraTokensAreNotImageTokens(t *testing.T) {
	run := func(images []*Image) *Report {
		s := NewSummary(4, 2, PairImageTokens)
		for _, im := range images {
			if err := s.Add(im); err != nil {
				t.Fatal(err)
			}
		}
		r, err := s.Finish(Options{Permutation: 100, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	want := run(handImages())
	withExtra := handImages()
	for _, im := range withExtra {
		// Insert the extra token at position 1 (token 1); patches move to 2, 3.
		im.Extra, im.Tokens = 1, []int{0, 1, 2, 3}
		im.PatchLabels = append([]int8{im.PatchLabels[0], LabelClass}, im.PatchLabels[1:]...)
		for _, s := range vit.AllSites() {
			for b := range im.Rank[s] {
				im.Rank[s][b] = append([]int32{im.Rank[s][b][0], 0}, im.Rank[s][b][1:]...)
				im.Top1[s][b] = append([]int32{im.Top1[s][b][0], 0}, im.Top1[s][b][1:]...)
				im.Logit[s][b] = append([]float32{im.Logit[s][b][0], float32(9 * b)}, im.Logit[s][b][1:]...)
			}
		}
	}
	got := run(withExtra)
	if !near(got.IdentifiableTokenShare, want.IdentifiableTokenShare) {
		t.Errorf("identifiable token share %v, want %v", got.IdentifiableTokenShare, want.IdentifiableTokenShare)
	}
	for b := range want.Blocks {
		g, w := got.Blocks[b], want.Blocks[b]
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"cls ident", g.CLSIdent, w.CLSIdent}, {"image ident", g.ImageIdent, w.ImageIdent},
			{"image top1", g.ImageTop1, w.ImageTop1}, {"change", g.ChangeRate, w.ChangeRate},
			{"attn image", g.AttnImage, w.AttnImage}, {"mlp image", g.MLPImage, w.MLPImage},
			{"attn cls", g.AttnCLS, w.AttnCLS}, {"class-context", g.ClassMinusCtx, w.ClassMinusCtx},
		} {
			if !near(c.got, c.want) && !(math.IsNaN(c.got) && math.IsNaN(c.want)) {
				t.Errorf("block %d %s = %v with an extra token, %v without", b, c.name, c.got, c.want)
			}
		}
	}
}
