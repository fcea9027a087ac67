package analysis

import (
	"encoding/json"
	"math"
	"testing"

	"vitlens/vit"
	"vitlens/vit/vittest"
)

// testdata/report/report.json holds the original code's statistics computed
// by tools/reference/make_report_golden.py (numpy 1.24, scipy 1.10.1) with
// the original's own formulas on synthetic readouts.

type goldenSummary struct {
	Classes, Depth, Tokens int
	Labels                 []int
	PatchLabels            [][]int8 `json:"patch_labels"`
	Rank                   [][][]int32
	RandomRank             [][][]int32    `json:"random_rank"`
	LogitHS                [][][]float32  `json:"logit_hs"`
	LogitAttn              [][][]float32  `json:"logit_attn"`
	LogitMLP               [][][]float32  `json:"logit_mlp"`
	Expect                 map[string]any `json:"expect"`
}

func readReportGolden(t *testing.T) (sum goldenSummary, perturbed struct {
	Classes int
	Ranks   [][]int32
	Expect  struct {
		SequenceShare float64 `json:"sequence_share"`
	}
}) {
	t.Helper()
	var g struct {
		Summary   json.RawMessage
		Perturbed json.RawMessage
	}
	vittest.ReportGolden(t, &g)
	if err := json.Unmarshal(g.Summary, &sum); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(g.Perturbed, &perturbed); err != nil {
		t.Fatal(err)
	}
	return sum, perturbed
}

func (g goldenSummary) number(t *testing.T, key string) float64 {
	t.Helper()
	v, ok := g.Expect[key].(float64)
	if !ok {
		t.Fatalf("golden lacks %s", key)
	}
	return v
}

func (g goldenSummary) series(t *testing.T, key string) []float64 {
	t.Helper()
	raw, ok := g.Expect[key].([]any)
	if !ok {
		t.Fatalf("golden lacks %s", key)
	}
	out := make([]float64, len(raw))
	for i, v := range raw {
		out[i] = v.(float64)
	}
	return out
}

// images rebuilds the fixture's readouts; random uses the random model's
// ranks and only the hs site.
func (g goldenSummary) images(random bool) []*Image {
	var out []*Image
	sites := []vit.Site{vit.SiteHS, vit.SiteAttn, vit.SiteMLP}
	if random {
		sites = sites[:1]
	}
	for j := range g.Rank {
		im := NewImage(sites, g.Depth, g.Tokens)
		im.Image, im.Label, im.HasCLS = j, g.Labels[j], true
		for p := range im.Tokens {
			im.Tokens[p] = p
			if p > 0 {
				im.PatchLabels[p] = g.PatchLabels[j][p-1]
			}
		}
		ranks := g.Rank[j]
		if random {
			ranks = g.RandomRank[j]
		}
		for b := 0; b < g.Depth; b++ {
			copy(im.Rank[vit.SiteHS][b], ranks[b])
			copy(im.Logit[vit.SiteHS][b], g.LogitHS[j][b])
			if !random {
				copy(im.Logit[vit.SiteAttn][b], g.LogitAttn[j][b])
				copy(im.Logit[vit.SiteMLP][b], g.LogitMLP[j][b])
			}
		}
		out = append(out, im)
	}
	return out
}

func summarise(t *testing.T, g goldenSummary, pairs PairTokens) *Report {
	t.Helper()
	mk := func(random bool) *Summary {
		s := NewSummary(g.Classes, g.Depth, pairs)
		for _, im := range g.images(random) {
			if err := s.Add(im); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	rep, err := mk(false).Finish(Options{Random: mk(true), Permutation: 300, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// Every corrected summary statistic equals the original's formula.
func TestSummaryMatchesOriginalFormulas(t *testing.T) {
	g, _ := readReportGolden(t)
	rep := summarise(t, g, PairAllTokens)
	last := rep.Blocks[g.Depth-1]
	// Counts and means of the same integers: exact up to summation order.
	const exact = 1e-12
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"print_identifiability: % identifiable image tokens per image", rep.IdentifiableTokenShare, g.number(t, "identifiable_token_share")},
		{"print_identifiability: % images with one", rep.ImagesWithIdentToken, g.number(t, "images_with_identifiable_token")},
		{"print_context_perturb baseline: class-labelled tokens", last.ClassTop1, g.number(t, "class_token_top1")},
		{"print_context_perturb baseline: context-labelled tokens", last.ContextTop1, g.number(t, "context_token_top1")},
	} {
		if math.Abs(c.got-c.want) > exact {
			t.Errorf("%s = %.15g, original %.15g", c.name, c.got, c.want)
		}
	}
	if rep.VsRandomTokens != PairAllTokens || rep.VsRandomTest == "" {
		t.Errorf("the report must name its test: %q %q", rep.VsRandomTokens, rep.VsRandomTest)
	}
	wantAll, meanCLS, meanImg := g.series(t, "wilcoxon_all_tokens"), g.series(t, "mean_cls"), g.series(t, "mean_image")
	identDiff, identP := g.series(t, "ident_class_minus_context"), g.series(t, "ident_class_context_p")
	attnDiff, attnP := g.series(t, "attn_change_class_minus_context"), g.series(t, "attn_change_class_context_p")
	mlpDiff, mlpP := g.series(t, "mlp_change_class_minus_context"), g.series(t, "mlp_change_class_context_p")
	imageOnly := summarise(t, g, PairImageTokens)
	wantImg := g.series(t, "wilcoxon_image_tokens")
	// The permutation p-values come from different shuffles (the original's
	// were unseeded): with 300 rounds each, two estimates of one p differ by
	// more than 0.15 with probability below 3e-4; p = 0 and p = 1 must agree.
	const pTol = 0.15
	for b, row := range rep.Blocks {
		// scipy's normal approximation: the same ranks give the same z.
		if relErr(row.VsRandomP, wantAll[b]) > 1e-9 {
			t.Errorf("block %d: Wilcoxon over all tokens p = %g, scipy %g", b, row.VsRandomP, wantAll[b])
		}
		if p := imageOnly.Blocks[b].VsRandomP; relErr(p, wantImg[b]) > 1e-9 {
			t.Errorf("block %d: Wilcoxon over image tokens p = %g, scipy %g", b, p, wantImg[b])
		}
		if math.Abs(row.CLSIdent-meanCLS[b]) > exact || math.Abs(row.ImageIdent-meanImg[b]) > exact {
			t.Errorf("block %d: mean r [CLS] %g image %g, original %g %g", b, row.CLSIdent, row.ImageIdent, meanCLS[b], meanImg[b])
		}
		if math.Abs(row.ClassMinusCtx-identDiff[b]) > exact || !pClose(row.ClassCtxP, identP[b], pTol) {
			t.Errorf("block %d: class − context r %g (p %g), original %g (p %g)", b, row.ClassMinusCtx, row.ClassCtxP, identDiff[b], identP[b])
		}
		if b == 0 {
			if !math.IsNaN(row.AttnClassMinusCtx) {
				t.Errorf("block 0 has no previous block, change difference %g", row.AttnClassMinusCtx)
			}
			continue
		}
		// The original subtracts and averages float32 logits in float32; Go
		// subtracts them exactly in float64.
		const f32 = 2e-6
		if math.Abs(row.AttnClassMinusCtx-attnDiff[b-1]) > f32 || !pClose(row.AttnClassCtxP, attnP[b-1], pTol) {
			t.Errorf("block %d: attention Δ class − context %g (p %g), original %g (p %g)", b, row.AttnClassMinusCtx, row.AttnClassCtxP, attnDiff[b-1], attnP[b-1])
		}
		if math.Abs(row.MLPClassMinusCtx-mlpDiff[b-1]) > f32 || !pClose(row.MLPClassCtxP, mlpP[b-1], pTol) {
			t.Errorf("block %d: MLP Δ class − context %g (p %g), original %g (p %g)", b, row.MLPClassMinusCtx, row.MLPClassCtxP, mlpDiff[b-1], mlpP[b-1])
		}
	}
}

func pClose(got, want, tol float64) bool {
	if want == 0 || want == 1 {
		return got == want
	}
	return math.Abs(got-want) <= tol
}

func relErr(got, want float64) float64 {
	if got == want {
		return 0
	}
	return math.Abs(got-want) / math.Abs(want)
}

// The original's context-perturbation rate counts every image, [CLS]
// included, and an image that kept no image token as its [CLS] alone.
func TestSequenceShareMatchesPrintContextPerturb(t *testing.T) {
	_, g := readReportGolden(t)
	s := NewSummary(g.Classes, 1, PairNone)
	empty := 0
	for j, ranks := range g.Ranks {
		im := NewImage([]vit.Site{vit.SiteHS}, 1, len(ranks))
		im.Image, im.HasCLS = j, true
		for p := range im.Tokens {
			im.Tokens[p] = p
		}
		copy(im.Rank[vit.SiteHS][0], ranks)
		if len(ranks) == 1 {
			empty++
		}
		if err := s.Add(im); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := s.Finish(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if empty == 0 {
		t.Fatal("the fixture must have images without image tokens")
	}
	if math.Abs(rep.IdentifiableSequenceShare-g.Expect.SequenceShare) > 1e-12 {
		t.Errorf("sequence share %.15g, print_context_perturb %.15g", rep.IdentifiableSequenceShare, g.Expect.SequenceShare)
	}
	if rep.Images != len(g.Ranks) || rep.ImagesWithoutImageTokens != empty {
		t.Errorf("images %d (without image tokens %d), want %d (%d)", rep.Images, rep.ImagesWithoutImageTokens, len(g.Ranks), empty)
	}
}
