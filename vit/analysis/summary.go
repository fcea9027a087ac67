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
	// Lens holds the entropy and KL columns of the hs readouts; the caller
	// streams rows into it (they are not part of Image).
	Lens *LensStats

	// Last-block rates over image tokens (spec §3.3 print_identifiability),
	// computed with the right token set for models without [CLS] (A6 fixed).
	identTokenShare stats.Welford // per image with image tokens: share of them with rank 0
	withIdentToken  int           // images with at least one rank-0 image token
	noImageTokens   int           // images left without image tokens (a perturbation dropped them all)
	// The original's context-perturbation rate (print_context_perturb, A8):
	// per image, the share of rank-0 tokens among all tokens of its
	// sequence, [CLS] included; every image counts, and an image without
	// image tokens counts as its [CLS]-only sequence.
	identSeqShare stats.Welford

	// Per block.
	clsIdent, imgIdent []stats.Welford // mean identifiability 1 − rank/C
	clsTop1, imgTop1   []rate          // share with rank 0 (class identifiable)
	// Image tokens by patch label: mean identifiability and top-1 rate
	// pooled over class-labelled [0] and context-labelled [1] tokens.
	labelIdent [2][]stats.Welford
	labelTop1  [2][]rate
	change     []rate       // hs_b target logit > hs_{b−1}, image tokens
	sublayer   [2][2][]rate // [attn,mlp][cls,img]: Δ logit vs hs_{b−1} > 0
	// Residual composition: hs_b's top-1 equals attn_b's, mlp_b's, hs_{b−1}'s,
	// or none of them (the original tested attn twice, A5).
	compAttn, compMLP, compPrev, compNone []rate
	// Class- vs context-labelled image tokens (spec §3.8), kept for the
	// permutation test: identifiability, and the class-similarity change
	// Δ = logit(sublayer_b) − logit(hs_{b−1}) of attn [0] and mlp [1] (notebook
	// 2's compute_context_diff), over the same tokens.
	ctxValues [][]float64
	ctxLabels [][]bool
	ctxDelta  [2][][]float64
	// Pairing with a random-model run for the Wilcoxon test: identifiability
	// of the tokens pairTokens selects, in image order.
	pairTokens PairTokens
	pairs      [][]float64
}

// PairTokens selects the tokens of the paired Wilcoxon test against a
// random-init run.
type PairTokens string

const (
	// PairNone keeps nothing: no paired test.
	PairNone PairTokens = ""
	// PairAllTokens is the original's test (class_ident.py): the whole
	// images × tokens array flattened, [CLS] included.
	PairAllTokens PairTokens = "all_tokens"
	// PairImageTokens leaves [CLS] (and a distillation token or registers)
	// out: the image tokens only.
	PairImageTokens PairTokens = "image_tokens"
)

// ParsePairTokens accepts the names of the token sets of the paired test.
func ParsePairTokens(s string) (PairTokens, error) {
	switch t := PairTokens(s); t {
	case PairAllTokens, PairImageTokens:
		return t, nil
	}
	return PairNone, fmt.Errorf("unknown token set %q for the test against the random model (want %s or %s)", s, PairAllTokens, PairImageTokens)
}

// Describe names the test as the tables print it.
func (t PairTokens) Describe() string {
	switch t {
	case PairAllTokens:
		return "one-sided paired Wilcoxon signed-rank test of r, all tokens with [CLS] (the original's)"
	case PairImageTokens:
		return "one-sided paired Wilcoxon signed-rank test of r, image tokens only (not the original's: it includes [CLS])"
	}
	return ""
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
// pairs says which tokens' identifiability to keep for a later paired test
// against a random-init run (PairNone: none).
func NewSummary(classes, depth int, pairs PairTokens) *Summary {
	s := &Summary{Classes: classes, Depth: depth, pairTokens: pairs,
		clsIdent: make([]stats.Welford, depth), imgIdent: make([]stats.Welford, depth),
		clsTop1: make([]rate, depth), imgTop1: make([]rate, depth),
		change: make([]rate, depth), compAttn: make([]rate, depth), compMLP: make([]rate, depth),
		compPrev: make([]rate, depth), compNone: make([]rate, depth),
		ctxValues: make([][]float64, depth), ctxLabels: make([][]bool, depth), Lens: NewLensStats(depth)}
	for l := range s.sublayer {
		for k := range s.sublayer[l] {
			s.sublayer[l][k] = make([]rate, depth)
		}
		s.ctxDelta[l] = make([][]float64, depth)
		s.labelIdent[l] = make([]stats.Welford, depth)
		s.labelTop1[l] = make([]rate, depth)
	}
	if pairs != PairNone {
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
	var imgTokens, identTokens, identSeq int
	for p := range im.Tokens {
		if hs[last][p] == 0 {
			identSeq++
		}
		if !im.isImage(p) {
			continue
		}
		imgTokens++
		if hs[last][p] == 0 {
			identTokens++
		}
	}
	if imgTokens > 0 {
		s.identTokenShare.Add(float64(identTokens) / float64(imgTokens))
	} else {
		s.noImageTokens++
	}
	if identTokens > 0 {
		s.withIdentToken++
	}
	if len(im.Tokens) > 0 {
		s.identSeqShare.Add(float64(identSeq) / float64(len(im.Tokens)))
	}
	for b := 0; b < s.Depth; b++ {
		for p := range im.Tokens {
			r := ident(hs[b][p])
			if s.pairs != nil && (s.pairTokens == PairAllTokens || im.isImage(p)) {
				s.pairs[b] = append(s.pairs[b], r)
			}
			labelled := false
			if im.isCLS(p) {
				s.clsIdent[b].Add(r)
				s.clsTop1[b].add(hs[b][p] == 0)
			} else if im.isImage(p) {
				s.imgIdent[b].Add(r)
				s.imgTop1[b].add(hs[b][p] == 0)
				if l := im.PatchLabels[p]; l != LabelUnknown {
					labelled = true
					s.ctxValues[b] = append(s.ctxValues[b], r)
					s.ctxLabels[b] = append(s.ctxLabels[b], l == LabelClass)
					k := 1
					if l == LabelClass {
						k = 0
					}
					s.labelIdent[k][b].Add(r)
					s.labelTop1[k][b].add(hs[b][p] == 0)
				}
			}
			if b == 0 {
				continue
			}
			prev := im.Logit[vit.SiteHS][b-1][p]
			if im.isImage(p) {
				s.change[b].add(im.Logit[vit.SiteHS][b][p] > prev)
			}
			kind := 1
			if im.isCLS(p) {
				kind = 0
			}
			for l, site := range []vit.Site{vit.SiteAttn, vit.SiteMLP} {
				if im.Logit[site] != nil && (kind == 0 || im.isImage(p)) {
					s.sublayer[l][kind][b].add(im.Logit[site][b][p] > prev)
					if labelled {
						s.ctxDelta[l][b] = append(s.ctxDelta[l][b], float64(im.Logit[site][b][p])-float64(prev))
					}
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
	Block      int32   `parquet:"block" json:"block"`
	CLSIdent   float64 `parquet:"cls_ident" json:"cls_ident"`
	ImageIdent float64 `parquet:"image_ident" json:"image_ident"`
	CLSTop1    float64 `parquet:"cls_top1" json:"cls_top1"`
	ImageTop1  float64 `parquet:"image_top1" json:"image_top1"`
	// Mean entropy of the lens distribution and mean KL from the last
	// block's distribution of the same token to it (nats), at hs, for
	// [CLS] and image tokens (NaN when the ranks table lacks the columns).
	CLSEntropy   float64 `parquet:"cls_entropy" json:"cls_entropy"`
	ImageEntropy float64 `parquet:"image_entropy" json:"image_entropy"`
	CLSKL        float64 `parquet:"cls_kl_last" json:"cls_kl_last"`
	ImageKL      float64 `parquet:"image_kl_last" json:"image_kl_last"`
	ChangeRate   float64 `parquet:"change_rate" json:"change_rate"`
	AttnCLS      float64 `parquet:"attn_cls_increase" json:"attn_cls_increase"`
	AttnImage    float64 `parquet:"attn_image_increase" json:"attn_image_increase"`
	MLPCLS       float64 `parquet:"mlp_cls_increase" json:"mlp_cls_increase"`
	MLPImage     float64 `parquet:"mlp_image_increase" json:"mlp_image_increase"`
	MatchAttn    float64 `parquet:"top1_matches_attn" json:"top1_matches_attn"`
	MatchMLP     float64 `parquet:"top1_matches_mlp" json:"top1_matches_mlp"`
	MatchPrev    float64 `parquet:"top1_matches_previous" json:"top1_matches_previous"`
	MatchNone    float64 `parquet:"top1_matches_none" json:"top1_matches_none"`
	// Image tokens by patch label (datasets with masks): mean identifiability
	// and top-1 rate pooled over class-labelled and over context-labelled
	// tokens (the baselines of print_context_perturb).
	ClassIdent   float64 `parquet:"class_token_ident" json:"class_token_ident"`
	ContextIdent float64 `parquet:"context_token_ident" json:"context_token_ident"`
	ClassTop1    float64 `parquet:"class_token_top1" json:"class_token_top1"`
	ContextTop1  float64 `parquet:"context_token_top1" json:"context_token_top1"`
	// Mean identifiability of class- minus context-labelled image tokens and
	// its permutation p (spec §3.8).
	ClassMinusCtx float64 `parquet:"class_minus_context" json:"class_minus_context"`
	ClassCtxP     float64 `parquet:"class_context_p" json:"class_context_p"`
	// Notebook 2's compute_context_diff: mean class-similarity change
	// Δ = logit(sublayer_b) − logit(hs_{b−1}) of class- minus context-labelled
	// image tokens, for attention and the MLP, with its permutation p; b ≥ 1
	// (the original printed these rows as 0..B−2, A27).
	AttnClassMinusCtx float64 `parquet:"attn_change_class_minus_context" json:"attn_change_class_minus_context"`
	AttnClassCtxP     float64 `parquet:"attn_change_class_context_p" json:"attn_change_class_context_p"`
	MLPClassMinusCtx  float64 `parquet:"mlp_change_class_minus_context" json:"mlp_change_class_minus_context"`
	MLPClassCtxP      float64 `parquet:"mlp_change_class_context_p" json:"mlp_change_class_context_p"`
	VsRandomP         float64 `parquet:"vs_random_p" json:"vs_random_p"`
}

// Report is the finished summary.
type Report struct {
	Images   int     `json:"images"`
	Accuracy float64 `json:"accuracy"`
	// Last block, image tokens (print_identifiability): mean over the images
	// that have image tokens of the share of identifiable ones, and the
	// share of all images with at least one. ImagesWithoutImageTokens counts
	// the images a perturbation left with [CLS] alone: they are out of the
	// first mean and count as "none" in the second.
	IdentifiableTokenShare   float64 `json:"identifiable_token_share"`
	ImagesWithIdentToken     float64 `json:"images_with_identifiable_token"`
	ImagesWithoutImageTokens int     `json:"images_without_image_tokens"`
	// The original's context-perturbation rate (print_context_perturb, A8):
	// mean over every image of the share of identifiable tokens of its
	// whole sequence, [CLS] included (an image without image tokens counts
	// as its [CLS]-only sequence).
	IdentifiableSequenceShare float64 `json:"identifiable_sequence_share"`
	// VsRandomTest names the paired test behind vs_random_p ("" without a
	// random run); VsRandomTokens its token set.
	VsRandomTest   string     `json:"vs_random_test,omitempty"`
	VsRandomTokens PairTokens `json:"vs_random_tokens,omitempty"`
	Blocks         []BlockRow `json:"blocks"`
	// ContextPerturbation compares a perturb-tokens run with its unperturbed
	// extract (set by the caller that has both).
	ContextPerturbation *ContextComparison `json:"context_perturbation,omitempty"`
}

// HasPatchLabels reports whether the run had segmentation labels.
func (r *Report) HasPatchLabels() bool {
	for _, b := range r.Blocks {
		if !math.IsNaN(b.ClassTop1) || !math.IsNaN(b.ContextTop1) {
			return true
		}
	}
	return false
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
		ImagesWithIdentToken: nan, Accuracy: nan, ImagesWithoutImageTokens: s.noImageTokens,
		IdentifiableSequenceShare: s.identSeqShare.Mean()}
	if s.Images > 0 {
		rep.ImagesWithIdentToken = float64(s.withIdentToken) / float64(s.Images)
		rep.Accuracy = float64(s.Correct) / float64(s.Images)
	}
	if opt.Random != nil {
		if opt.Random.pairs == nil || s.pairs == nil || opt.Random.pairTokens != s.pairTokens {
			return nil, fmt.Errorf("the paired test needs both summaries made with the same token set (here %q, random %q)", s.pairTokens, opt.Random.pairTokens)
		}
		rep.VsRandomTest, rep.VsRandomTokens = s.pairTokens.Describe(), s.pairTokens
	}
	for b := 0; b < s.Depth; b++ {
		row := BlockRow{Block: int32(b), CLSIdent: s.clsIdent[b].Mean(), ImageIdent: s.imgIdent[b].Mean(),
			CLSTop1: s.clsTop1[b].Value(), ImageTop1: s.imgTop1[b].Value(),
			CLSEntropy: nan, ImageEntropy: nan, CLSKL: nan, ImageKL: nan, ChangeRate: nan, AttnCLS: nan, AttnImage: nan, MLPCLS: nan, MLPImage: nan,
			MatchAttn: nan, MatchMLP: nan, MatchPrev: nan, MatchNone: nan,
			ClassIdent: s.labelIdent[0][b].Mean(), ContextIdent: s.labelIdent[1][b].Mean(),
			ClassTop1: s.labelTop1[0][b].Value(), ContextTop1: s.labelTop1[1][b].Value(),
			ClassMinusCtx: nan, ClassCtxP: nan, AttnClassMinusCtx: nan, AttnClassCtxP: nan,
			MLPClassMinusCtx: nan, MLPClassCtxP: nan, VsRandomP: nan}
		s.Lens.fill(&row)
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
			for l, dst := range [2][2]*float64{{&row.AttnClassMinusCtx, &row.AttnClassCtxP}, {&row.MLPClassMinusCtx, &row.MLPClassCtxP}} {
				d := s.ctxDelta[l][b]
				if b == 0 || len(d) != len(s.ctxLabels[b]) {
					continue // no previous block, or the site was not extracted
				}
				obs, p, err := stats.PermutationTest(d, s.ctxLabels[b], stats.MeanDiff, opt.Permutation, opt.Seed+uint64((l+1)*s.Depth+b))
				if err != nil {
					return nil, fmt.Errorf("block %d: %w", b, err)
				}
				*dst[0], *dst[1] = obs, p
			}
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
	over := fmt.Sprintf("mean over the %d images", r.Images)
	if r.ImagesWithoutImageTokens > 0 {
		over = fmt.Sprintf("mean over the %d images with image tokens; %d left with [CLS] alone count as having none", r.Images-r.ImagesWithoutImageTokens, r.ImagesWithoutImageTokens)
	}
	fmt.Fprintf(w, "last block: %.2f%% identifiable image tokens per image (%s), %.2f%% images with at least one\n",
		100*r.IdentifiableTokenShare, over, 100*r.ImagesWithIdentToken)
	fmt.Fprintf(w, "last block, whole sequence with [CLS] (the original's perturbation rate, print_context_perturb): %.2f%% identifiable tokens per image, mean over all %d images\n",
		100*r.IdentifiableSequenceShare, r.Images)
	if len(r.Blocks) > 0 && r.HasPatchLabels() {
		l := r.Blocks[len(r.Blocks)-1]
		fmt.Fprintf(w, "last block, image tokens pooled by patch label: class-labelled %.2f%% identifiable (mean r %.3f), context-labelled %.2f%% (mean r %.3f)\n",
			100*l.ClassTop1, l.ClassIdent, 100*l.ContextTop1, l.ContextIdent)
	}
	if r.VsRandomTest != "" {
		fmt.Fprintf(w, "p_rand[%s]: %s\n", r.VsRandomTokens, r.VsRandomTest)
	}
	fmt.Fprintln(w)
	prand := "p_rand"
	if r.VsRandomTokens != PairNone {
		prand += "[" + string(r.VsRandomTokens) + "]"
	}
	cols := []string{"block", "cls_ident", "img_ident", "cls_top1", "img_top1", "change", "attn+cls", "attn+img", "mlp+cls", "mlp+img",
		"=attn", "=mlp", "=prev", "=none", prand}
	fmt.Fprintln(w, strings.Join(cols, "\t"))
	for _, b := range r.Blocks {
		fmt.Fprintf(w, "%d\t%s\n", b.Block+1, strings.Join([]string{f3(b.CLSIdent), f3(b.ImageIdent), f3(b.CLSTop1), f3(b.ImageTop1), f3(b.ChangeRate),
			f3(b.AttnCLS), f3(b.AttnImage), f3(b.MLPCLS), f3(b.MLPImage), f3(b.MatchAttn), f3(b.MatchMLP), f3(b.MatchPrev),
			f3(b.MatchNone), fp(b.VsRandomP)}, "\t"))
	}
	fmt.Fprintln(w, "\nlens statistics at hs, nats (entropy of the lens distribution; KL from the last block's distribution of the same token)")
	fmt.Fprintln(w, strings.Join([]string{"block", "cls_entropy", "img_entropy", "cls_kl_last", "img_kl_last"}, "\t"))
	for _, b := range r.Blocks {
		fmt.Fprintf(w, "%d\t%s\n", b.Block+1, strings.Join([]string{f3(b.CLSEntropy), f3(b.ImageEntropy), f3(b.CLSKL), f3(b.ImageKL)}, "\t"))
	}
	if !r.HasPatchLabels() {
		return
	}
	fmt.Fprintln(w, "\nclass- vs context-labelled image tokens (r = identifiability; Δ = target logit of the sublayer minus that of hs at the block before, notebook 2's compute_context_diff; p: label-permutation tests)")
	fmt.Fprintln(w, strings.Join([]string{"block", "class_r", "ctx_r", "class_top1", "ctx_top1", "r:cls-ctx", "p", "attnΔ:cls-ctx", "p", "mlpΔ:cls-ctx", "p"}, "\t"))
	for _, b := range r.Blocks {
		fmt.Fprintf(w, "%d\t%s\n", b.Block+1, strings.Join([]string{f3(b.ClassIdent), f3(b.ContextIdent), f3(b.ClassTop1), f3(b.ContextTop1),
			f3(b.ClassMinusCtx), fp(b.ClassCtxP), f3(b.AttnClassMinusCtx), fp(b.AttnClassCtxP), f3(b.MLPClassMinusCtx), fp(b.MLPClassCtxP)}, "\t"))
	}
}

// fp prints a p-value: three decimals, or two significant digits below
// 0.001 (a permutation p of 0 stays 0), "-" for NaN.
func fp(p float64) string {
	if p > 0 && p < 0.001 {
		return fmt.Sprintf("%.1e", p)
	}
	return f3(p)
}

// f3 prints a table cell: three decimals, "-" for NaN.
func f3(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}
