package figures

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	"vitlens/vit/analysis"
	"vitlens/vit/explain"
	"vitlens/vit/explain/batch"
)

// Section is one part of the report: figures side by side, then tables.
type Section struct {
	Title   string
	Intro   string
	Figures []*Figure
	Tables  []Table
	Notes   []string // what was skipped and why
}

// Table is a summary table of the report.
type Table struct {
	Title  string
	Header []string
	Rows   [][]string
}

// Report is every figure and table drawn from a set of results folders.
type Report struct {
	Runs     []*Run
	Sections []*Section
}

// Options tune Build.
type Options struct {
	Examples int // images per explainability figure (default 6)
	// PairBlocks averages consecutive block pairs (2b−1, 2b) of every run
	// twice as deep as the shallowest one in the cross-model figures (mean
	// identifiability, memories across models), as the original did for
	// ViT-L's 24 blocks against the 12 of the others (spec A26).
	PairBlocks bool
}

// Build draws every figure the runs allow, one section per notebook. The
// runs are not modified: the report holds copies, relabelled where two
// runs of one kind share a label (figure files are named after labels).
func Build(runs []*Run, opt Options) (*Report, error) {
	if opt.Examples <= 0 {
		opt.Examples = 6
	}
	rep := &Report{Runs: uniqueLabels(runs)}
	byKind := map[string][]*Run{}
	for _, r := range rep.Runs {
		byKind[r.Kind()] = append(byKind[r.Kind()], r)
	}
	rep.Sections = []*Section{
		identifiabilitySection(byKind, opt),
		mechanisticSection(byKind, opt),
		explainabilitySection(byKind, opt),
		probingSection(byKind),
	}
	if tl := byKind[tuneLensKind]; len(tl) > 0 {
		rep.Sections = append(rep.Sections, tunedLensSection(tl))
	}
	if d := byKind[dlaKind]; len(d) > 0 {
		rep.Sections = append(rep.Sections, dlaSection(d))
	}
	return rep, nil
}

// uniqueLabels copies the runs, numbering repeated labels within a kind.
func uniqueLabels(runs []*Run) []*Run {
	seen := map[string]int{}
	out := make([]*Run, len(runs))
	for i, r := range runs {
		c := *r
		k := r.Kind() + "/" + r.Label
		seen[k]++
		if n := seen[k]; n > 1 {
			c.Label = fmt.Sprintf("%s-%d", r.Label, n)
		}
		out[i] = &c
	}
	return out
}

// extractLike are the runs with lens readouts: extracts and perturbations.
func extractLike(byKind map[string][]*Run) []*Run {
	var out []*Run
	for _, k := range []string{"extract", "perturb-attn", "perturb-tokens"} {
		out = append(out, byKind[k]...)
	}
	return out
}

// identifiabilitySection is notebook 1: identifiability per block, against
// the random model, by patch label, and under perturbations.
func identifiabilitySection(byKind map[string][]*Run, opt Options) *Section {
	s := &Section{Title: "Class identifiability (notebook 1)",
		Intro: "Hidden states projected through the final LayerNorm and classifier head; r = 1 − rank/C of the true class."}
	extracts := extractLike(byKind)
	if len(extracts) == 0 {
		s.Notes = append(s.Notes, "no extract results folder given: run `vitlens extract` (and `vitlens summary` for the statistics)")
		return s
	}
	for _, r := range extracts {
		if r.Ident != nil {
			s.Figures = append(s.Figures, identEvolution(r))
		}
	}
	if ex := byKind["extract"]; len(ex) > 0 {
		pair := pairDeep(ex, opt.PairBlocks)
		s.Figures = append(s.Figures, meanEvolution(ex, pair), changeRate(ex))
	}
	for _, r := range extracts {
		if r.Ident != nil && hasPatchLabels(r.Ident) {
			s.Figures = append(s.Figures, contextVsClass(r))
		} else if r.Kind() == "extract" {
			s.Notes = append(s.Notes, fmt.Sprintf("%s: no segmentation labels, so no class-vs-context figure (needs a dataset with masks, e.g. ImageNet-S)", r.Label))
		}
	}
	s.Tables = append(s.Tables, identTable(extracts))
	for _, r := range extracts {
		s.Tables = append(s.Tables, blockTable(r))
		if r.Summary.HasPatchLabels() {
			s.Tables = append(s.Tables, labelTable(r))
		}
	}
	for _, r := range byKind["perturb-tokens"] {
		c, note := contextComparison(r, byKind["extract"])
		if c != nil {
			s.Tables = append(s.Tables, contextPerturbTable(r, c))
		} else {
			s.Notes = append(s.Notes, note)
		}
	}
	for _, r := range extracts {
		s.Notes = append(s.Notes, r.Notes...)
	}
	return s
}

// mechanisticSection is notebook 2: sublayer contributions, the class-
// minus-context change, and the key-value memories.
func mechanisticSection(byKind map[string][]*Run, opt Options) *Section {
	s := &Section{Title: "Mechanistic interpretability (notebook 2)",
		Intro: "How attention and MLP updates build the class representation; key-value memories of the sublayers."}
	for _, r := range byKind["extract"] {
		if r.Summary != nil && !allNaN(r.Summary.Blocks, func(i int) float64 { return r.Summary.Blocks[i].AttnImage }) {
			s.Figures = append(s.Figures, compositionality(r))
		}
		if r.Summary != nil && !allNaN(r.Summary.Blocks, func(i int) float64 { return r.Summary.Blocks[i].AttnClassMinusCtx }) {
			s.Tables = append(s.Tables, contextDiffTable(r))
		}
	}
	mems := byKind["memories"]
	if len(mems) == 0 {
		s.Notes = append(s.Notes, "no memories results folder given: run `vitlens memories --layer attn` and `--layer mlp` for the memory figures")
		return s
	}
	for _, r := range mems {
		s.Figures = append(s.Figures, matchScore(r), keyValue(r), accAgreement(r), memComposition(r))
		s.Tables = append(s.Tables, memoryTable(r))
		if len(r.Memory.Values) > 0 {
			s.Tables = append(s.Tables, valueVectorTable(r))
		}
		for _, n := range r.Memory.Notes {
			s.Notes = append(s.Notes, r.Label+": "+n)
		}
	}
	s.Figures = append(s.Figures, compareAll(mems, pairDeep(mems, opt.PairBlocks)))
	return s
}

// explainabilitySection is notebook 3: example maps, head-specific maps and
// the token-removal test.
func explainabilitySection(byKind map[string][]*Run, opt Options) *Section {
	s := &Section{Title: "Explainability (notebook 3)",
		Intro: "The paper's map (gradients of each block's class-space cross entropy with respect to its own attention) against Chefer et al."}
	for _, r := range byKind["explain"] {
		f, err := examples(r, opt.Examples)
		if err != nil {
			s.Notes = append(s.Notes, fmt.Sprintf("%s: %v", r.Label, err))
		} else if f != nil {
			s.Figures = append(s.Figures, f)
		}
		f, err = headMaps(r)
		if err != nil {
			s.Notes = append(s.Notes, fmt.Sprintf("%s: %v", r.Label, err))
		} else if f != nil {
			s.Figures = append(s.Figures, f)
		} else {
			s.Notes = append(s.Notes, fmt.Sprintf("%s: no head-specific maps (run `vitlens explain --per-head` for them)", r.Label))
		}
	}
	if len(byKind["explain"]) == 0 {
		s.Notes = append(s.Notes, "no explain results folder given: run `vitlens explain` for example maps")
	}
	for _, r := range byKind["removal"] {
		for _, dir := range []string{explain.Negative, explain.Positive} {
			if f := perturbation(r, dir); f != nil {
				s.Figures = append(s.Figures, f)
			}
		}
	}
	if rs := byKind["removal"]; len(rs) > 0 {
		s.Tables = append(s.Tables, aucTable(rs))
	} else {
		s.Notes = append(s.Notes, "no removal results folder given: run `vitlens removal` for the perturbation curves")
	}
	return s
}

// probingSection is notebook 4: the probes against the projection.
func probingSection(byKind map[string][]*Run) *Section {
	s := &Section{Title: "Linear probing (notebook 4)", Intro: "Per-token ridge probes against the class-embedding projection of the same vectors."}
	for _, r := range byKind["probe"] {
		s.Figures = append(s.Figures, probeComparison(r))
		s.Tables = append(s.Tables, probeTable(r))
	}
	if len(byKind["probe"]) == 0 {
		s.Notes = append(s.Notes, "no probe results folder given: run `vitlens probe`")
	}
	return s
}

// contextComparison returns a perturb-tokens run's comparison with its
// unperturbed extract: from its summary.json (`vitlens summary
// --unperturbed`), or from an extract among the given runs of the same
// model over the same images; otherwise a note saying what is missing.
func contextComparison(r *Run, extracts []*Run) (*analysis.ContextComparison, string) {
	if c := r.Summary.ContextPerturbation; c != nil {
		return c, ""
	}
	m := r.Manifest
	for _, e := range extracts {
		em := e.Manifest
		if em.Seed != nil || em.ModelSHA256 != m.ModelSHA256 || em.Dataset != m.Dataset || em.Selection != m.Selection || em.Config != m.Config {
			continue
		}
		c, err := analysis.CompareContext(m.Params["drop"], r.Summary, e.Summary)
		if err != nil {
			return nil, fmt.Sprintf("%s against %s: %v", r.Label, e.Label, err)
		}
		return c, ""
	}
	return nil, fmt.Sprintf("%s: no unperturbed extract of the same model and images given, so no comparison with the unperturbed run (give its folder too)", r.Label)
}

func allNaN[T any](v []T, f func(i int) float64) bool {
	for i := range v {
		if !math.IsNaN(f(i)) {
			return false
		}
	}
	return true
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f", 100*v)
}

func num(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.3f", v)
}

func pval(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v < 0.001:
		return "<0.001"
	}
	return fmt.Sprintf("%.3f", v)
}

func identTable(runs []*Run) Table {
	t := Table{Title: "identifiability at the last block (spec §3.3) and accuracy",
		Header: []string{"run", "experiment", "images", "accuracy %", "% identifiable image tokens / image (images with image tokens)",
			"% images with ≥1 identifiable token", "images without image tokens", "% identifiable tokens / image, [CLS] included, all images (the original's perturbation rate)"}}
	for _, r := range runs {
		s := r.Summary
		t.Rows = append(t.Rows, []string{r.Label, r.Kind(), fmt.Sprint(s.Images), pct(s.Accuracy), pct(s.IdentifiableTokenShare), pct(s.ImagesWithIdentToken),
			fmt.Sprint(s.ImagesWithoutImageTokens), pct(s.IdentifiableSequenceShare)})
	}
	return t
}

func blockTable(r *Run) Table {
	prand := "p vs random"
	if r.Summary.VsRandomTest != "" {
		prand += " (" + r.Summary.VsRandomTest + ")"
	}
	t := Table{Title: "per block: " + r.Label, Header: []string{"block", "[CLS] r", "image r", "[CLS] top-1", "image top-1", "change rate", "attn↑ [CLS]", "attn↑ img",
		"mlp↑ [CLS]", "mlp↑ img", "=attn", "=mlp", "=prev", "=none", prand}}
	for _, b := range r.Summary.Blocks {
		t.Rows = append(t.Rows, []string{fmt.Sprint(b.Block + 1), num(b.CLSIdent), num(b.ImageIdent), num(b.CLSTop1), num(b.ImageTop1), num(b.ChangeRate), num(b.AttnCLS), num(b.AttnImage),
			num(b.MLPCLS), num(b.MLPImage), num(b.MatchAttn), num(b.MatchMLP), num(b.MatchPrev), num(b.MatchNone), pval(b.VsRandomP)})
	}
	return t
}

// labelTable is identifiability by patch label (spec §3.8): rates pooled
// over class- and context-labelled image tokens, and the permutation test.
func labelTable(r *Run) Table {
	t := Table{Title: "class- vs context-labelled image tokens: " + r.Label,
		Header: []string{"block", "class r", "context r", "class top-1 %", "context top-1 %", "class − context r", "p (300-permutation, strict >)"}}
	for _, b := range r.Summary.Blocks {
		t.Rows = append(t.Rows, []string{fmt.Sprint(b.Block + 1), num(b.ClassIdent), num(b.ContextIdent), pct(b.ClassTop1), pct(b.ContextTop1),
			num(b.ClassMinusCtx), pval(b.ClassCtxP)})
	}
	return t
}

// contextDiffTable is notebook 2's compute_context_diff: the class-minus-
// context change of each sublayer. Blocks are 1-based from 2: the original
// printed the same rows as 0..B−2 (A27).
func contextDiffTable(r *Run) Table {
	t := Table{Title: "class- minus context-labelled change Δ = logit(sublayer_b) − logit(hs_{b−1}) (notebook 2, compute_context_diff): " + r.Label,
		Header: []string{"block", "attention Δ class − context", "p", "MLP Δ class − context", "p"}}
	for _, b := range r.Summary.Blocks[1:] {
		t.Rows = append(t.Rows, []string{fmt.Sprint(b.Block + 1), num(b.AttnClassMinusCtx), pval(b.AttnClassCtxP), num(b.MLPClassMinusCtx), pval(b.MLPClassCtxP)})
	}
	return t
}

// contextPerturbTable is the original's print_context_perturb as one table.
func contextPerturbTable(r *Run, c *analysis.ContextComparison) Table {
	t := Table{Title: fmt.Sprintf("context perturbation (drop %s) against the unperturbed run, last block: %s", c.Drop, r.Label),
		Header: []string{"run", "images", "accuracy %", "tokens counted", "% identifiable"}}
	t.Rows = [][]string{
		{"perturbed", fmt.Sprint(c.Images), pct(c.PerturbedAccuracy), fmt.Sprintf("every token, [CLS] included, mean of per-image shares over all images (the original's perturbed rate; %d images without image tokens count as [CLS] alone)", c.ImagesWithoutImageTokens), pct(c.PerturbedSequenceShare)},
		{"perturbed", fmt.Sprint(c.Images), pct(c.PerturbedAccuracy), "kept image tokens, pooled", pct(c.PerturbedImageTop1)},
		{"unperturbed", fmt.Sprint(c.UnperturbedImages), pct(c.UnperturbedAccuracy), c.Kept + " image tokens, pooled (the original's baseline)", pct(c.UnperturbedTop1)},
	}
	return t
}

func memoryTable(r *Run) Table {
	t := Table{Title: "key-value memories: " + r.Label, Header: []string{"block", "agreement %", "random class %", "[CLS] agreement %", "composition %",
		"correct − incorrect %", "p", "class-value", "random", "p"}}
	for _, b := range r.Memory.Blocks {
		t.Rows = append(t.Rows, []string{fmt.Sprint(b.Block + 1), pct(b.Agreement), pct(b.AgreementRandom), pct(b.CLSAgreement), pct(b.Composition),
			pct(b.CorrectMinusIncorrect), pval(b.CorrectP), num(b.ClassValue), num(b.ClassValueRandom), pval(b.ClassValueP)})
	}
	return t
}

// valueVectorTable lists the classes the most-used memories' values promote
// (notebook 2's interpretable value vectors).
func valueVectorTable(r *Run) Table {
	t := Table{Title: "interpretable value vectors: the most-used memories of each block and the top-5 classes of their column of E·W_out: " + r.Label,
		Header: []string{"block", "memory", "% of tokens with it in their top-5", "classes it promotes, best first"}}
	for _, v := range r.Memory.Values {
		names := make([]string, len(v.Classes))
		for i, c := range v.Classes {
			names[i] = r.ClassName(int(c))
		}
		t.Rows = append(t.Rows, []string{fmt.Sprint(v.Block + 1), fmt.Sprint(v.Memory), pct(v.Share), strings.Join(names, ", ")})
	}
	return t
}

func aucTable(runs []*Run) Table {
	t := Table{Title: "token-removal AUCs: trapezoid (area under accuracy vs fraction removed, 0..P removed) / original (Σacc/(max·P) over 1..P−1 removed, as src/plots/explainability.py prints it)",
		Header: []string{"run", "loss of our map", "images", "accuracy %", "ordering", "negative AUC ↑ trapezoid / original", "positive AUC ↓ trapezoid / original"}}
	for _, r := range runs {
		rep := r.Removal
		for _, o := range explain.AllOrderings {
			neg, pos := rep.Curve(o, explain.Negative), rep.Curve(o, explain.Positive)
			if neg == nil && pos == nil {
				continue
			}
			cell := func(c *batch.RemovalCurve) string {
				if c == nil {
					return "–"
				}
				return fmt.Sprintf("%.4f / %.4f", c.AUC, c.AUCOriginal)
			}
			name := o
			if o == explain.OrderRandom && neg != nil {
				name = fmt.Sprintf("random (%d seeds)", neg.Seeds)
			}
			t.Rows = append(t.Rows, []string{r.Label, mapLoss(r.Manifest.Params), fmt.Sprint(rep.Images), pct(rep.Accuracy), name, cell(neg), cell(pos)})
		}
	}
	return t
}

// mapLoss names the loss that made the paper's map of a removal or explain
// run (A13).
func mapLoss(params map[string]string) string {
	if params["double_softmax"] == "true" {
		return "double softmax (the original's)"
	}
	return "cross-entropy"
}

func probeTable(r *Run) Table {
	t := Table{Title: "probes vs projection, top-1 accuracy %: " + r.Label,
		Header: []string{"block", "site", "probe, image tokens", "probe, [CLS]", "projection, image tokens", "projection, [CLS]"}}
	for _, l := range r.Probe.Layers {
		t.Rows = append(t.Rows, []string{fmt.Sprint(l.Block + 1), l.Site, pct(l.ImageAccuracy), pct(l.CLSAccuracy), pct(l.LensImageAccuracy), pct(l.LensCLSAccuracy)})
	}
	return t
}

// SaveFigures writes every figure as PNG and SVG into dir.
func (r *Report) SaveFigures(dir string) (int, error) {
	n := 0
	for _, s := range r.Sections {
		for _, f := range s.Figures {
			if err := f.Save(dir); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

type htmlFigure struct {
	Title, Caption, Name string
	Src                  template.URL
}

type htmlSection struct {
	Title, Intro string
	Figures      []htmlFigure
	Tables       []Table
	Notes        []string
}

type htmlRun struct {
	Label, Experiment, Model, Dataset, Selection, Params, Dir string
	Images                                                    int
}

// WriteHTML writes one self-contained page: figures inlined as base64 SVG
// (or PNG with png true), tables as HTML.
func (r *Report) WriteHTML(w io.Writer, title string, usePNG bool) error {
	data := struct {
		Title, Generated string
		Runs             []htmlRun
		Sections         []htmlSection
	}{Title: title, Generated: time.Now().UTC().Format(time.RFC3339)}
	for _, run := range r.Runs {
		m := run.Manifest
		var params []string
		for k, v := range m.Params {
			if v != "" {
				params = append(params, k+"="+v)
			}
		}
		data.Runs = append(data.Runs, htmlRun{Label: run.Label, Experiment: m.Experiment, Model: m.ModelPath, Dataset: m.Dataset,
			Selection: m.Selection, Params: strings.Join(sorted(params), " "), Dir: run.Dir, Images: m.Total})
	}
	for _, s := range r.Sections {
		hs := htmlSection{Title: s.Title, Intro: s.Intro, Tables: s.Tables, Notes: s.Notes}
		for _, f := range s.Figures {
			var src string
			if usePNG {
				b, err := f.PNG()
				if err != nil {
					return err
				}
				src = "data:image/png;base64," + base64.StdEncoding.EncodeToString(b)
			} else {
				b, err := f.SVG()
				if err != nil {
					return err
				}
				src = "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString(b)
			}
			hs.Figures = append(hs.Figures, htmlFigure{Title: f.Title, Caption: f.Caption, Name: f.Name, Src: template.URL(src)})
		}
		data.Sections = append(data.Sections, hs)
	}
	return page.Execute(w, data)
}

func sorted(v []string) []string {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
	return v
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em 2em;color:#222;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.meta{color:#666;font-size:.85em}
.figs{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
figure{margin:0;border:1px solid #e3e3e3;border-radius:6px;padding:.5em;background:#fafafa;max-width:720px}
figure img{max-width:100%;height:auto;display:block;background:#fff}
figcaption{font-size:.8em;color:#444;margin-top:.3em}
table{border-collapse:collapse;font-size:.8em;margin:.6em 0}
th,td{border:1px solid #ddd;padding:.2em .5em;text-align:right} th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
.note{color:#8a5a00;font-size:.85em}
details{margin:.4em 0} summary{cursor:pointer;font-weight:600;font-size:.9em}
</style></head><body>
<h1>{{.Title}}</h1>
<div class="meta">generated {{.Generated}} by vitlens report</div>
<h2>Results folders</h2>
<table><tr><th>run</th><th>experiment</th><th>images</th><th>model</th><th>dataset</th><th>selection</th><th>parameters</th><th>folder</th></tr>
{{range .Runs}}<tr><td>{{.Label}}</td><td>{{.Experiment}}</td><td>{{.Images}}</td><td>{{.Model}}</td><td>{{.Dataset}}</td><td>{{.Selection}}</td><td>{{.Params}}</td><td>{{.Dir}}</td></tr>
{{end}}</table>
{{range .Sections}}<h2>{{.Title}}</h2><p>{{.Intro}}</p>
<div class="figs">{{range .Figures}}<figure id="{{.Name}}"><img src="{{.Src}}" alt="{{.Title}}"><figcaption><b>{{.Name}}</b>: {{.Caption}}</figcaption></figure>
{{end}}</div>
{{range $i, $t := .Tables}}<details {{if eq $i 0}}open{{end}}><summary>{{$t.Title}}</summary><table><tr>{{range $t.Header}}<th>{{.}}</th>{{end}}</tr>
{{range $t.Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table></details>
{{end}}{{range .Notes}}<p class="note">skipped: {{.}}</p>
{{end}}{{end}}
</body></html>
`))
