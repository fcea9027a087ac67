package analysis

import (
	"fmt"
	"io"
	"math"
	"strings"

	"vitlens/vit"
	"vitlens/vit/stats"
)

// Summary accumulates the identifiability statistics of one run.
type Summary struct {
	Classes int
	Depth   int
	Images  int
	Correct int

	// Last-block rates over image tokens (spec §3.3 print_identifiability),
	// computed with the right token set for models without [CLS] (A6 fixed).
	identTokenShare stats.Welford // per image: share of image tokens with rank 0
	withIdentToken  int           // images with at least one rank-0 image token

	// Per block.
	clsIdent, imgIdent []stats.Welford // mean identifiability 1 − rank/C
	clsTop1, imgTop1   []rate          // share with rank 0 (class identifiable)
	change             []rate          // hs_b target logit > hs_{b−1}, image tokens
	sublayer           [2][2][]rate    // [attn,mlp][cls,img]: Δ logit vs hs_{b−1} > 0
	// Residual composition: hs_b's top-1 equals attn_b's, mlp_b's, hs_{b−1}'s,
	// or none of them (the original tested attn twice, A5).
	compAttn, compMLP, compPrev, compNone []rate
	// Class- vs context-labelled image tokens (spec §3.8), kept for the
	// permutation test.
	ctxValues [][]float64
	ctxLabels [][]bool
	// Pairing with a random-model run for the Wilcoxon test: identifiability
	// of image tokens (all tokens without [CLS]) in image order.
	pairs [][]float64
}

type rate struct{ hit, n int }

func (r *rate) add(ok bool) {
	r.n++
	if ok {
		r.hit++
	}
}

// Value is the share of hits, NaN when empty.
func (r rate) Value() float64 {
	if r.n == 0 {
		return math.NaN()
	}
	return float64(r.hit) / float64(r.n)
}

// NewSummary prepares a summary for a model with the given classes and depth.
// keepPairs keeps per-token identifiability for a later paired test.
func NewSummary(classes, depth int, keepPairs bool) *Summary {
	s := &Summary{Classes: classes, Depth: depth,
		clsIdent: make([]stats.Welford, depth), imgIdent: make([]stats.Welford, depth),
		clsTop1: make([]rate, depth), imgTop1: make([]rate, depth),
		change: make([]rate, depth), compAttn: make([]rate, depth), compMLP: make([]rate, depth),
		compPrev: make([]rate, depth), compNone: make([]rate, depth),
		ctxValues: make([][]float64, depth), ctxLabels: make([][]bool, depth)}
	for l := range s.sublayer {
		for k := range s.sublayer[l] {
			s.sublayer[l][k] = make([]rate, depth)
		}
	}
	if keepPairs {
		s.pairs = make([][]float64, depth)
	}
	return s
}

// Add folds one image in.
func (s *Summary) Add(im *Image) error {
	hs := im.Rank[vit.SiteHS]
	if hs == nil {
		return fmt.Errorf("image %d: summary needs the hs site", im.Image)
	}
	if len(hs) != s.Depth {
		return fmt.Errorf("image %d: %d blocks, summary expects %d", im.Image, len(hs), s.Depth)
	}
	s.Images++
	if im.Correct {
		s.Correct++
	}
	C := float64(s.Classes)
	ident := func(r int32) float64 { return 1 - float64(r)/C }
	last := s.Depth - 1
	var imgTokens, identTokens int
	for p := range im.Tokens {
		if im.isCLS(p) {
			continue
		}
		imgTokens++
		if hs[last][p] == 0 {
			identTokens++
		}
	}
	if imgTokens > 0 {
		s.identTokenShare.Add(float64(identTokens) / float64(imgTokens))
	}
	if identTokens > 0 {
		s.withIdentToken++
	}
	for b := 0; b < s.Depth; b++ {
		for p := range im.Tokens {
			r := ident(hs[b][p])
			if im.isCLS(p) {
				s.clsIdent[b].Add(r)
				s.clsTop1[b].add(hs[b][p] == 0)
			} else {
				s.imgIdent[b].Add(r)
				s.imgTop1[b].add(hs[b][p] == 0)
				if s.pairs != nil {
					s.pairs[b] = append(s.pairs[b], r)
				}
				if l := im.PatchLabels[p]; l != LabelUnknown {
					s.ctxValues[b] = append(s.ctxValues[b], r)
					s.ctxLabels[b] = append(s.ctxLabels[b], l == LabelClass)
				}
			}
			if b == 0 {
				continue
			}
			prev := im.Logit[vit.SiteHS][b-1][p]
			if !im.isCLS(p) {
				s.change[b].add(im.Logit[vit.SiteHS][b][p] > prev)
			}
			kind := 1
			if im.isCLS(p) {
				kind = 0
			}
			for l, site := range []vit.Site{vit.SiteAttn, vit.SiteMLP} {
				if im.Logit[site] != nil {
					s.sublayer[l][kind][b].add(im.Logit[site][b][p] > prev)
				}
			}
			if im.Top1[vit.SiteAttn] != nil && im.Top1[vit.SiteMLP] != nil {
				top := im.Top1[vit.SiteHS][b][p]
				a := top == im.Top1[vit.SiteAttn][b][p]
				m := top == im.Top1[vit.SiteMLP][b][p]
				pr := top == im.Top1[vit.SiteHS][b-1][p]
				s.compAttn[b].add(a)
				s.compMLP[b].add(m)
				s.compPrev[b].add(pr)
				s.compNone[b].add(!a && !m && !pr)
			}
		}
	}
	return nil
}

// BlockRow is one line of the per-block summary table (block is 0-based;
// papers and plots say block+1).
type BlockRow struct {
	Block         int32   `parquet:"block" json:"block"`
	CLSIdent      float64 `parquet:"cls_ident" json:"cls_ident"`
	ImageIdent    float64 `parquet:"image_ident" json:"image_ident"`
	CLSTop1       float64 `parquet:"cls_top1" json:"cls_top1"`
	ImageTop1     float64 `parquet:"image_top1" json:"image_top1"`
	ChangeRate    float64 `parquet:"change_rate" json:"change_rate"`
	AttnCLS       float64 `parquet:"attn_cls_increase" json:"attn_cls_increase"`
	AttnImage     float64 `parquet:"attn_image_increase" json:"attn_image_increase"`
	MLPCLS        float64 `parquet:"mlp_cls_increase" json:"mlp_cls_increase"`
	MLPImage      float64 `parquet:"mlp_image_increase" json:"mlp_image_increase"`
	MatchAttn     float64 `parquet:"top1_matches_attn" json:"top1_matches_attn"`
	MatchMLP      float64 `parquet:"top1_matches_mlp" json:"top1_matches_mlp"`
	MatchPrev     float64 `parquet:"top1_matches_previous" json:"top1_matches_previous"`
	MatchNone     float64 `parquet:"top1_matches_none" json:"top1_matches_none"`
	ClassMinusCtx float64 `parquet:"class_minus_context" json:"class_minus_context"`
	ClassCtxP     float64 `parquet:"class_context_p" json:"class_context_p"`
	VsRandomP     float64 `parquet:"vs_random_p" json:"vs_random_p"`
}

// Report is the finished summary.
type Report struct {
	Images   int     `json:"images"`
	Accuracy float64 `json:"accuracy"`
	// Last block, image tokens: mean over images of the share of
	// identifiable tokens, and the share of images with at least one.
	IdentifiableTokenShare float64    `json:"identifiable_token_share"`
	ImagesWithIdentToken   float64    `json:"images_with_identifiable_token"`
	Blocks                 []BlockRow `json:"blocks"`
}

// Options of Finish.
type Options struct {
	Random      *Summary // a random-model run over the same images, for the Wilcoxon test
	Permutation int      // rounds of the class-vs-context permutation test (0: skip)
	Seed        uint64
}

// Finish computes the report. Tests that lack their data give NaN.
func (s *Summary) Finish(opt Options) (*Report, error) {
	nan := math.NaN()
	rep := &Report{Images: s.Images, IdentifiableTokenShare: s.identTokenShare.Mean(),
		ImagesWithIdentToken: nan, Accuracy: nan}
	if s.Images > 0 {
		rep.ImagesWithIdentToken = float64(s.withIdentToken) / float64(s.Images)
		rep.Accuracy = float64(s.Correct) / float64(s.Images)
	}
	if opt.Random != nil && (opt.Random.pairs == nil || s.pairs == nil) {
		return nil, fmt.Errorf("paired test needs both summaries made with keepPairs")
	}
	for b := 0; b < s.Depth; b++ {
		row := BlockRow{Block: int32(b), CLSIdent: s.clsIdent[b].Mean(), ImageIdent: s.imgIdent[b].Mean(),
			CLSTop1: s.clsTop1[b].Value(), ImageTop1: s.imgTop1[b].Value(),
			ChangeRate: nan, AttnCLS: nan, AttnImage: nan, MLPCLS: nan, MLPImage: nan,
			MatchAttn: nan, MatchMLP: nan, MatchPrev: nan, MatchNone: nan,
			ClassMinusCtx: nan, ClassCtxP: nan, VsRandomP: nan}
		if s.clsIdent[b].Count() == 0 {
			row.CLSIdent = nan
		}
		if b > 0 {
			row.ChangeRate = s.change[b].Value()
			row.AttnCLS, row.AttnImage = s.sublayer[0][0][b].Value(), s.sublayer[0][1][b].Value()
			row.MLPCLS, row.MLPImage = s.sublayer[1][0][b].Value(), s.sublayer[1][1][b].Value()
			row.MatchAttn, row.MatchMLP = s.compAttn[b].Value(), s.compMLP[b].Value()
			row.MatchPrev, row.MatchNone = s.compPrev[b].Value(), s.compNone[b].Value()
		}
		if opt.Permutation > 0 && hasBoth(s.ctxLabels[b]) {
			obs, p, err := stats.PermutationTest(s.ctxValues[b], s.ctxLabels[b], stats.MeanDiff, opt.Permutation, opt.Seed+uint64(b))
			if err != nil {
				return nil, fmt.Errorf("block %d: %w", b, err)
			}
			row.ClassMinusCtx, row.ClassCtxP = obs, p
		}
		if opt.Random != nil {
			x, y := s.pairs[b], opt.Random.pairs[b]
			if len(x) != len(y) {
				return nil, fmt.Errorf("block %d: %d tokens here, %d in the random run: not the same images", b, len(x), len(y))
			}
			w, err := stats.WilcoxonSignedRank(x, y, stats.Greater)
			if err == nil {
				row.VsRandomP = w.P
			}
		}
		rep.Blocks = append(rep.Blocks, row)
	}
	return rep, nil
}

func hasBoth(labels []bool) bool {
	var t, f bool
	for _, l := range labels {
		t, f = t || l, f || !l
	}
	return t && f
}

// WriteText prints the report as the paper's tables, for a terminal or README.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "images %d   accuracy %.2f%%\n", r.Images, 100*r.Accuracy)
	fmt.Fprintf(w, "last block: %.2f%% identifiable image tokens per image, %.2f%% images with at least one\n\n",
		100*r.IdentifiableTokenShare, 100*r.ImagesWithIdentToken)
	cols := []string{"block", "cls_ident", "img_ident", "cls_top1", "img_top1", "change", "attn+cls", "attn+img", "mlp+cls", "mlp+img",
		"=attn", "=mlp", "=prev", "=none", "cls-ctx", "p_ctx", "p_rand"}
	fmt.Fprintln(w, strings.Join(cols, "\t"))
	f := func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%.3f", v)
	}
	for _, b := range r.Blocks {
		fmt.Fprintf(w, "%d\t%s\n", b.Block+1, strings.Join([]string{f(b.CLSIdent), f(b.ImageIdent), f(b.CLSTop1), f(b.ImageTop1), f(b.ChangeRate),
			f(b.AttnCLS), f(b.AttnImage), f(b.MLPCLS), f(b.MLPImage), f(b.MatchAttn), f(b.MatchMLP), f(b.MatchPrev),
			f(b.MatchNone), f(b.ClassMinusCtx), f(b.ClassCtxP), f(b.VsRandomP)}, "\t"))
	}
}
