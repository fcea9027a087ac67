package figures

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"vitlens/vit"
	"vitlens/vit/analysis"
	"vitlens/vit/bundle"
	"vitlens/vit/dataset"
	"vitlens/vit/experiment"
	"vitlens/vit/explain"
	"vitlens/vit/explain/batch"
	"vitlens/vit/lens"
	"vitlens/vit/memory"
	"vitlens/vit/preprocess"
	"vitlens/vit/probe"
	"vitlens/vit/results"
	"vitlens/vit/vittest"
)

// Box statistics from rank histograms equal numpy's percentiles (linear
// interpolation) and Tukey's whiskers on the expanded values.
func TestBoxFromHistogram(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	const C = 7
	for trial := 0; trial < 30; trial++ {
		h := &identHist{classes: C}
		h.counts[0] = [][]int64{make([]int64, C)}
		var vals []float64
		n := 1 + rng.IntN(40)
		for i := 0; i < n; i++ {
			r := rng.IntN(C)
			if rng.IntN(3) == 0 {
				r = 0
			}
			h.counts[0][0][r]++
			vals = append(vals, 1-float64(r)/C)
		}
		sort.Float64s(vals)
		q := func(p float64) float64 {
			pos := p * float64(len(vals)-1)
			lo := int(math.Floor(pos))
			hi := min(lo+1, len(vals)-1)
			return vals[lo]*(1-(pos-float64(lo))) + vals[hi]*(pos-float64(lo))
		}
		s := h.box(0, 0)
		for _, c := range []struct {
			name      string
			got, want float64
		}{{"q1", s.q1, q(0.25)}, {"median", s.median, q(0.5)}, {"q3", s.q3, q(0.75)}} {
			if math.Abs(c.got-c.want) > 1e-12 {
				t.Fatalf("trial %d %s: %g, want %g (values %v)", trial, c.name, c.got, c.want, vals)
			}
		}
		iqr := s.q3 - s.q1
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range vals {
			if v >= s.q1-1.5*iqr {
				lo = math.Min(lo, v)
			}
			if v <= s.q3+1.5*iqr {
				hi = math.Max(hi, v)
			}
		}
		if s.adjLow != lo || s.adjHigh != hi {
			t.Fatalf("trial %d whiskers %g..%g, want %g..%g", trial, s.adjLow, s.adjHigh, lo, hi)
		}
	}
}

func TestDecodeNaN(t *testing.T) {
	in := &analysis.Report{Images: 3, Accuracy: 0.5, IdentifiableTokenShare: math.NaN(),
		Blocks: []analysis.BlockRow{{Block: 1, CLSIdent: 0.25, VsRandomP: math.NaN()}}}
	dir := t.TempDir()
	if err := experiment.WriteJSON(dir, "summary.json", in); err != nil {
		t.Fatal(err)
	}
	var out *analysis.Report
	if !readSummary(dir, &out) {
		t.Fatal("summary.json not read")
	}
	if out.Images != 3 || out.Accuracy != 0.5 || !math.IsNaN(out.IdentifiableTokenShare) || len(out.Blocks) != 1 ||
		out.Blocks[0].Block != 1 || out.Blocks[0].CLSIdent != 0.25 || !math.IsNaN(out.Blocks[0].VsRandomP) {
		t.Fatalf("round trip gave %+v", out)
	}
	mem := &experiment.MemoryReport{Layer: "mlp", Blocks: []experiment.MemoryBlock{{Block: 2, Agreement: 0.1, CorrectP: math.NaN()}}}
	if err := experiment.WriteJSON(dir, "summary.json", mem); err != nil {
		t.Fatal(err)
	}
	var mout *experiment.MemoryReport
	if !readSummary(dir, &mout) || mout.Layer != "mlp" || mout.Blocks[0].Agreement != 0.1 || !math.IsNaN(mout.Blocks[0].CorrectP) {
		t.Fatalf("memory round trip gave %+v", mout)
	}
}

var testConfig = vittest.SmallConfig

func create(t *testing.T, kind string, params map[string]string, ds dataset.Dataset) *results.Run {
	t.Helper()
	man := results.Manifest{Experiment: kind, Params: params, ModelSHA256: "test", ModelPath: "tiny.safetensors",
		Config: testConfig, Dataset: ds.Name(), Total: ds.Len(), ChunkSize: 8}
	out, err := results.Create(filepath.Join(t.TempDir(), kind), man, results.Parquet)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// One folder of every kind, drawn into one report.
func TestReportFromEveryKind(t *testing.T) {
	m := vittest.SharpModel(t)
	p, _ := preprocess.PresetByName("google")
	b := &bundle.Bundle{Model: m, Preset: p, Classes: []string{"a", "b", "c", "d"}}
	ds, err := dataset.Open("folder", vittest.ImageFolder(t, 3, 16, 16, 1), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, spec := range []experiment.Spec{
		{Kind: experiment.Extract, Sites: vit.AllSites(), TopK: 5},
		{Kind: experiment.Memories, Sites: []vit.Site{vit.SiteMLP}, TopK: 5, Layer: memory.MLP, Seed: 1},
	} {
		out := create(t, string(spec.Kind), spec.Params(), ds)
		r := &experiment.Runner{Bundle: b, Backend: lens.NewCPU(m), Data: ds, Out: out, Spec: spec, Batch: 4}
		if _, err := r.Run(); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, out.Dir())
	}
	rs := explain.RemovalSpec{Orderings: []string{explain.OrderOurs, explain.OrderChefer, explain.OrderRandom},
		Directions: []string{explain.Negative, explain.Positive}, RandomSeeds: 2}
	out := create(t, "removal", rs.Params(), ds)
	if _, err := (&batch.Removal{Bundle: b, Data: ds, Out: out, Spec: rs}).Run(); err != nil {
		t.Fatal(err)
	}
	dirs = append(dirs, out.Dir())
	ps := probe.Spec{Sites: probe.DefaultSites, Alpha: 1, Train: "same images"}
	out = create(t, "probe", ps.Params(), ds)
	if _, err := (&probe.Runner{Bundle: b, Train: ds, Test: ds, Out: out, Spec: ps}).Run(); err != nil {
		t.Fatal(err)
	}
	dirs = append(dirs, out.Dir())
	out = create(t, "explain", nil, ds)
	if _, err := (&batch.Explainer{Bundle: b, Data: ds, Out: out, Target: batch.TargetLabel, Size: 32, PerHead: true}).Run(); err != nil {
		t.Fatal(err)
	}
	dirs = append(dirs, out.Dir())

	var runs []*Run
	for _, d := range dirs {
		r, err := Load(d, LoadOptions{Permutation: 20})
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	// A second copy of the extract: the report renames it, the caller's run keeps its label.
	again, err := Load(dirs[0], LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	runs = append(runs, again)
	rep, err := Build(runs, Options{Examples: 2})
	if err != nil {
		t.Fatal(err)
	}
	if again.Label != runs[0].Label || rep.Runs[len(rep.Runs)-1].Label != runs[0].Label+"-2" {
		t.Errorf("labels: caller's %q, report's %q (first %q)", again.Label, rep.Runs[len(rep.Runs)-1].Label, runs[0].Label)
	}
	figDir := t.TempDir()
	n, err := rep.SaveFigures(figDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"identifiability_evolution-tiny", "mean_evolution", "prob_increment", "compositionality-tiny",
		"match_score-tiny-mlp", "key_val_agr-tiny-mlp", "acc_agr_rate-tiny-mlp", "composition-tiny-mlp", "compare_all",
		"negative_perturb-tiny", "positive_perturb-tiny", "probe_comparison-tiny", "explainability-tiny", "explainability_heads-tiny"} {
		for _, ext := range []string{".png", ".svg"} {
			if st, err := os.Stat(filepath.Join(figDir, name+ext)); err != nil || st.Size() == 0 {
				t.Errorf("figure %s%s missing (%d written)", name, ext, n)
			}
		}
	}
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf, "test", false); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{"data:image/svg", "token-removal AUCs", "Linear probing", "no segmentation labels",
		"interpretable value vectors", "trapezoid / original", "[CLS] included, all images"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// The class-vs-context figure needs segmentation masks, which no test
// dataset has: draw it from a synthetic histogram.
func TestContextVsClassFigure(t *testing.T) {
	const depth, C = 2, 5
	h := &identHist{classes: C}
	for g := range h.counts {
		h.counts[g] = make([][]int64, depth)
		for b := range h.counts[g] {
			h.counts[g][b] = []int64{int64(g + 1), 2, 3, 1, int64(b)}
		}
	}
	if !hasPatchLabels(h) {
		t.Fatal("labels not seen")
	}
	r := &Run{Label: "x", Ident: h, Summary: &analysis.Report{Blocks: []analysis.BlockRow{{ClassCtxP: 0.01}, {ClassCtxP: 0.5}}}}
	if _, err := contextVsClass(r).SVG(); err != nil {
		t.Fatal(err)
	}
	h.counts[groupClass][depth-1] = make([]int64, C)
	h.counts[groupContext][depth-1] = make([]int64, C)
	if hasPatchLabels(h) {
		t.Fatal("empty labels seen")
	}
}

// ViT-L's "normalized blocks" (spec A26) are the original's
// get_ident_mean_evolution pairs: checked against its formula in
// tools/reference/make_report_golden.py.
func TestPairAverageMatchesOriginal(t *testing.T) {
	var g struct {
		Summary struct {
			Expect struct {
				MeanCLS         []float64 `json:"mean_cls"`
				MeanImage       []float64 `json:"mean_image"`
				PairedMeanCLS   []float64 `json:"paired_mean_cls"`
				PairedMeanImage []float64 `json:"paired_mean_image"`
			}
		}
	}
	vittest.ReportGolden(t, &g)
	e := g.Summary.Expect
	for _, c := range [][2][]float64{{e.MeanCLS, e.PairedMeanCLS}, {e.MeanImage, e.PairedMeanImage}} {
		got := PairAverage(c[0])
		if len(got) != len(c[1]) || len(got) == 0 {
			t.Fatalf("%d pairs, original %d", len(got), len(c[1]))
		}
		for i := range got {
			if math.Abs(got[i]-c[1][i]) > 1e-15 {
				t.Errorf("pair %d: %g, original %g", i, got[i], c[1][i])
			}
		}
	}
	// Only the run twice as deep as the shallowest is paired.
	deep := &Run{Manifest: results.Manifest{Config: vit.Config{Depth: 24}}}
	base := &Run{Manifest: results.Manifest{Config: vit.Config{Depth: 12}}}
	p := pairDeep([]*Run{deep, base}, true)
	if !p[deep] || p[base] || p.depth(deep) != 12 || len(p.series(base, make([]float64, 12))) != 12 {
		t.Errorf("pairing %v", p)
	}
	if len(pairDeep([]*Run{deep, base}, false)) != 0 {
		t.Error("pairing without the option")
	}
}

// A masked extract and a context perturbation of the same images: the
// report holds the label table, compute_context_diff's table and the
// print_context_perturb comparison, computed from the two summaries.
func TestContextTables(t *testing.T) {
	nan := math.NaN()
	row := func(b int32, classTop1 float64) analysis.BlockRow {
		return analysis.BlockRow{Block: b, CLSIdent: 0.9, ImageIdent: 0.6, CLSTop1: 0.5, ImageTop1: 0.3, ChangeRate: nan,
			AttnCLS: nan, AttnImage: nan, MLPCLS: nan, MLPImage: nan, MatchAttn: nan, MatchMLP: nan, MatchPrev: nan, MatchNone: nan,
			ClassIdent: 0.7, ContextIdent: 0.5, ClassTop1: classTop1, ContextTop1: 0.2, ClassMinusCtx: 0.2, ClassCtxP: 0,
			AttnClassMinusCtx: 0.5, AttnClassCtxP: 0.01, MLPClassMinusCtx: -0.1, MLPClassCtxP: 0.9, VsRandomP: nan}
	}
	m := results.Manifest{Experiment: "extract", ModelSHA256: "h", Dataset: "imagenet-s", Selection: "all", Config: vit.Config{Depth: 2}}
	ex := &Run{Label: "m", Manifest: m, Summary: &analysis.Report{Images: 10, Accuracy: 0.8, Blocks: []analysis.BlockRow{row(0, 0.4), row(1, 0.7192)}}}
	pm := m
	pm.Experiment, pm.Params = "perturb-tokens", map[string]string{"drop": "context"}
	pt := &Run{Label: "m-no_context", Manifest: pm, Summary: &analysis.Report{Images: 10, Accuracy: 0.5, IdentifiableSequenceShare: 0.447,
		ImagesWithoutImageTokens: 2, Blocks: []analysis.BlockRow{row(0, nan), row(1, nan)}}}
	pt.Summary.Blocks[1].ImageTop1 = 0.25
	rep, err := Build([]*Run{ex, pt}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf, "t", false); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{"class- vs context-labelled image tokens: m", "compute_context_diff", "context perturbation (drop context)",
		"<td>71.92</td>", "<td>44.70</td>", "<td>25.00</td>", "2 images without image tokens"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
