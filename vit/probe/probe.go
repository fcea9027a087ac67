// Package probe trains the paper's per-token linear probes (spec §3.10):
// for every block, site and token position, a ridge regression from the raw
// hidden vector to ±1 one-hot class targets, fitted on a training split and
// read out on the test images as top-1 accuracy and the rank of the true
// class. The class-embedding projection (the lens) of the same vectors is
// read out beside it, so one results folder holds both sides of the
// paper's comparison.
//
// Deviations from the original prober.py:
//   - Features are extracted once per pass over the data for a group of
//     (block, site) pairs sized to a memory budget, instead of once per
//     token (the original makes 50 passes per layer).
//   - The ridge is solved exactly (stats.FitRidgeLabels, Cholesky on the
//     centred Gram matrix); the original's sklearn 'lsqr' is iterative and
//     stops at tol 1e-4 (A36: still ridge on ±1 targets, alpha 1, with an
//     unpenalised intercept, no feature scaling).
//   - Any model and dataset (not only B/32 on ImageNet-S); the training
//     split is whatever the caller opens (the paper: ImageNet-S "test", 10
//     images per class; Fashion-MNIST: its train split).
//   - Ranks count the classes with a strictly higher score (ties, which do
//     not occur with float scores in practice, do not depend on sort order).
package probe

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/dataset"
	"vitlens/vit/experiment"
	"vitlens/vit/lens"
	"vitlens/vit/results"
	"vitlens/vit/stats"
)

// Row is one test image's readout of one probe (block, site, token) and of
// the lens at the same place: table "probe".
type Row struct {
	Image    int32  `parquet:"image"`
	Label    int32  `parquet:"label"`
	Block    int32  `parquet:"block"`
	Site     string `parquet:"site,dict"`
	Token    int32  `parquet:"token"`
	Rank     int32  `parquet:"rank"` // 0-based rank of the label under the probe
	Top1     int32  `parquet:"top1"`
	LensRank int32  `parquet:"lens_rank"` // the same under the class projection
	LensTop1 int32  `parquet:"lens_top1"`
}

// SkipRow records an image left out and why: table "skipped".
type SkipRow struct {
	Image  int32  `parquet:"image"`
	ID     string `parquet:"id"`
	Split  string `parquet:"split,dict"` // "train" or "test"
	Reason string `parquet:"reason"`
}

// Spec says what to fit.
type Spec struct {
	Sites []vit.Site // default hs, attn, mlp (the original's LAYERS)
	Alpha float64    // ridge penalty, 1 in the paper
	// MemoryBytes bounds the features held at once; the (block, site) pairs
	// are split into groups, one pass over the data per group.
	MemoryBytes int64
	Train       string // a description of the training split, for the manifest
}

// DefaultSites are the original's probe layers: block outputs, attention
// and MLP sublayer outputs.
var DefaultSites = []vit.Site{vit.SiteHS, vit.SiteAttn, vit.SiteMLP}

// Params are the fields that change results, for the manifest.
// Tables are the tables a probe run writes, for the manifest.
func (s Spec) Tables() []results.Table {
	return []results.Table{results.TableOf[Row]("probe"), results.TableOf[SkipRow]("skipped")}
}

func (s Spec) Params() map[string]string {
	var sites []string
	for _, x := range s.Sites {
		sites = append(sites, x.String())
	}
	// The memory budget decides the groups of (block, site) pairs, which are
	// the chunks: another budget would resume into other chunks.
	return map[string]string{"sites": strings.Join(sites, ","), "alpha": strconv.FormatFloat(s.Alpha, 'g', -1, 64),
		"train": s.Train, "memory-gb": strconv.FormatFloat(float64(s.MemoryBytes)/(1<<30), 'g', -1, 64)}
}

// Runner fits the probes and writes the readouts into a results folder.
type Runner struct {
	Bundle      *bundle.Bundle
	Train, Test dataset.Dataset // already selected
	Out         *results.Run
	Spec        Spec
	// Progress, when set, is called with a stage name and counts.
	Progress func(stage string, done, total int)
	Log      io.Writer
}

// Stats summarises a Run.
type Stats struct {
	Train, Test, Skipped, Groups int
	Elapsed                      time.Duration
}

type pair struct {
	block int
	site  vit.Site
}

// Validate checks the spec against the model and the datasets; Run calls it
// first, and a command calls it before it creates the results folder.
func (r *Runner) Validate() error {
	if len(r.Spec.Sites) == 0 {
		return errors.New("probe: no sites")
	}
	if !(r.Spec.Alpha >= 0) {
		return fmt.Errorf("probe: --alpha must be >= 0, got %g", r.Spec.Alpha)
	}
	for _, ds := range []dataset.Dataset{r.Train, r.Test} {
		if n, c := len(ds.Classes()), r.Bundle.Model.Config.Classes; n > c {
			return fmt.Errorf("dataset %s has %d classes, the model only %d", ds.Name(), n, c)
		}
	}
	return nil
}

// Run extracts features group by group, fits one probe per (block, site,
// token) and writes the test readouts, one results chunk per group.
func (r *Runner) Run() (Stats, error) {
	var st Stats
	start := time.Now()
	m := r.Bundle.Model
	c := m.Config
	if err := r.Validate(); err != nil {
		return st, err
	}
	var pairs []pair
	for _, s := range r.Spec.Sites {
		for b := 0; b < c.Depth; b++ {
			pairs = append(pairs, pair{b, s})
		}
	}
	n, d := c.NumTokens(), c.Dim
	perPair := int64(r.Train.Len()+r.Test.Len()) * int64(n*d) * 4
	group := len(pairs)
	if r.Spec.MemoryBytes > 0 {
		group = int(max(1, min(int64(len(pairs)), r.Spec.MemoryBytes/max(perPair, 1))))
	}
	proj := lens.NewProjector(m)
	trainSplit := &split{name: "train", ds: r.Train}
	testSplit := &split{name: "test", ds: r.Test}
	var skips []SkipRow
	for g, k := 0, 0; g < len(pairs); g, k = g+group, k+1 {
		st.Groups++
		ps := pairs[g:min(g+group, len(pairs))]
		if r.Out.ChunkDone(k) {
			continue
		}
		train, sk, err := r.features(trainSplit, ps)
		if err != nil {
			return st, err
		}
		skips = append(skips, sk...)
		test, sk, err := r.features(testSplit, ps)
		if err != nil {
			return st, err
		}
		skips = append(skips, sk...)
		if len(train.labels) == 0 || len(test.labels) == 0 {
			return st, errors.New("probe: no usable training or test images")
		}
		rows, err := r.fit(ps, train, test, proj)
		if err != nil {
			return st, err
		}
		st.Train, st.Test = len(train.labels), len(test.labels)
		if err := results.WriteChunk(r.Out, "probe", k, rows); err != nil {
			return st, err
		}
		if k == 0 {
			if err := results.WriteChunk(r.Out, "skipped", k, append(r.indexSkips(), skips...)); err != nil {
				return st, err
			}
		}
		if err := r.Out.CommitChunk(k); err != nil {
			return st, err
		}
	}
	st.Skipped = len(skips)
	st.Elapsed = time.Since(start)
	return st, r.Out.Finish()
}

// indexSkips lists what the training and test datasets left out while
// indexing (see experiment.IndexSkips).
func (r *Runner) indexSkips() []SkipRow {
	var rows []SkipRow
	for _, sp := range []split{{name: "train", ds: r.Train}, {name: "test", ds: r.Test}} {
		for _, s := range experiment.IndexSkips(sp.ds) {
			rows = append(rows, SkipRow{Image: s.Image, ID: s.ID, Split: sp.name, Reason: s.Reason})
		}
	}
	return rows
}

// split is one dataset split across the groups: which of its items the
// probes use is decided by the first group's pass (images that fail are
// skipped) and kept for the others, so every group has the same rows.
type split struct {
	name string
	ds   dataset.Dataset
	use  []bool // nil before the first pass
}

// features holds one split's vectors for a group: feats[pair][token] is a
// rows×D matrix, labels[row] and index[row] the images' labels and indices.
type features struct {
	feats  [][][]float32
	labels []int
	index  []int
}

// features runs the model on a split once and keeps the group's vectors.
// On the first pass, images that fail are skipped (and returned as rows of
// the "skipped" table); on later passes a failure is an error.
func (r *Runner) features(s *split, ps []pair) (*features, []SkipRow, error) {
	first := s.use == nil
	if first {
		s.use = make([]bool, s.ds.Len())
		for i := range s.use {
			s.use[i] = true
		}
	}
	f, errs := r.extract(s, ps)
	if !first {
		return f, nil, r.laterFailure(s, errs)
	}
	var skips []SkipRow
	for i, err := range errs {
		if err == nil {
			continue
		}
		s.use[i] = false
		item := s.ds.Item(i)
		skips = append(skips, SkipRow{Image: int32(item.Index), ID: item.ID, Split: s.name, Reason: err.Error()})
		if r.Log != nil {
			fmt.Fprintf(r.Log, "skipped %s image %d: %v\n", s.name, item.Index, err)
		}
	}
	if len(skips) > 0 {
		// Extract again without the failed images so rows stay contiguous (rare).
		f, errs = r.extract(s, ps)
		if err := r.laterFailure(s, errs); err != nil {
			return nil, nil, err
		}
	}
	return f, skips, nil
}

// laterFailure is the error of an image that failed after the first pass
// had used it.
func (r *Runner) laterFailure(s *split, errs []error) error {
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("probe: %s image %d failed on a later pass: %w", s.name, s.ds.Item(i).Index, err)
		}
	}
	return nil
}

// extract runs the model on the split's used items, in parallel, and
// returns their vectors in item order, one row each, with each item's error.
func (r *Runner) extract(s *split, ps []pair) (*features, []error) {
	c := r.Bundle.Model.Config
	n, d := c.NumTokens(), c.Dim
	var items []int // row → item
	for i, use := range s.use {
		if use {
			items = append(items, i)
		}
	}
	rows := len(items)
	f := &features{feats: make([][][]float32, len(ps)), labels: make([]int, rows), index: make([]int, rows)}
	for p := range ps {
		f.feats[p] = make([][]float32, n)
		for t := range n {
			f.feats[p][t] = make([]float32, rows*d)
		}
	}
	taps := vit.Taps{}
	for _, p := range ps {
		taps.Sites[p.site] = true
	}
	errs := make([]error, s.ds.Len())
	var mu sync.Mutex
	done := 0
	vit.Parallel(0, rows, func(row int) {
		i := items[row]
		if err := r.extractOne(s.ds, i, row, ps, taps, f); err != nil {
			errs[i] = fmt.Errorf("%s: %w", s.ds.Item(i).ID, err)
		}
		mu.Lock()
		done++
		if r.Progress != nil {
			r.Progress(s.name+" features", done, rows)
		}
		mu.Unlock()
	})
	return f, errs
}

// extractOne runs item i and copies its vectors into row of f.
func (r *Runner) extractOne(ds dataset.Dataset, i, row int, ps []pair, taps vit.Taps, f *features) error {
	m := r.Bundle.Model
	c := m.Config
	n, d := c.NumTokens(), c.Dim
	px, err := dataset.Input(ds, i, r.Bundle.Preset, c.ImageSize)
	if err != nil {
		return err
	}
	tr, err := m.Forward(px, vit.Options{Taps: taps})
	if err != nil {
		return err
	}
	for pi, p := range ps {
		h := tr.Site(p.site, p.block).Data
		for t := range n {
			copy(f.feats[pi][t][row*d:(row+1)*d], h[t*d:(t+1)*d])
		}
	}
	item := ds.Item(i)
	f.index[row], f.labels[row] = item.Index, item.Label
	return nil
}

// fit trains and reads out every probe of a group, in parallel over
// (pair, token).
func (r *Runner) fit(ps []pair, train, test *features, proj *lens.Projector) ([]Row, error) {
	c := r.Bundle.Model.Config
	n, d, C := c.NumTokens(), c.Dim, c.Classes
	rowsTe := len(test.labels)
	out := make([][]Row, len(ps)*n)
	errs := make([]error, len(ps)*n)
	var mu sync.Mutex
	done := 0
	vit.Parallel(0, len(ps)*n, func(j int) {
		p, t := ps[j/n], j%n
		x := test.feats[j/n][t]
		pr, err := Fit(train.feats[j/n][t], train.labels, x, test.labels, d, C, r.Spec.Alpha)
		if err != nil {
			errs[j] = fmt.Errorf("probe %s block %d token %d: %w", p.site, p.block, t, err)
			return
		}
		lensLogits := proj.Direct(x, rowsTe)
		rows := make([]Row, rowsTe)
		for i := range rowsTe {
			ll := lensLogits[i*C : (i+1)*C]
			rows[i] = Row{Image: int32(test.index[i]), Label: int32(test.labels[i]), Block: int32(p.block),
				Site: p.site.String(), Token: int32(t), Rank: int32(pr.Ranks[i]), Top1: int32(pr.Top1[i]),
				LensRank: int32(lens.Rank(ll, test.labels[i])), LensTop1: int32(lens.Argmax(ll))}
		}
		out[j] = rows
		mu.Lock()
		done++
		if r.Progress != nil {
			r.Progress("fit", done, len(ps)*n)
		}
		mu.Unlock()
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var rows []Row
	for _, rs := range out {
		rows = append(rows, rs...)
	}
	return rows, nil
}

// Prediction is one probe's readout of the test rows.
type Prediction struct {
	Scores []float64 // rows×classes
	Ranks  []int     // 0-based rank of each row's label
	Top1   []int
}

// Fit trains one probe on rows×d train features with ±1 one-hot targets
// over classes (ridge, alpha, unpenalised intercept) and reads it out on
// the test features.
func Fit(trainX []float32, trainLabels []int, testX []float32, testLabels []int, d, classes int, alpha float64) (*Prediction, error) {
	model, err := stats.FitRidgeLabels(trainX, trainLabels, len(trainLabels), d, classes, alpha, true)
	if err != nil {
		return nil, err
	}
	scores, err := model.Predict(testX, len(testLabels))
	if err != nil {
		return nil, err
	}
	p := &Prediction{Scores: scores, Ranks: make([]int, len(testLabels)), Top1: make([]int, len(testLabels))}
	for i, l := range testLabels {
		if l < 0 || l >= classes {
			return nil, fmt.Errorf("test label %d of row %d is outside [0, %d)", l, i, classes)
		}
		row := scores[i*classes : (i+1)*classes]
		p.Ranks[i], p.Top1[i] = rank64(row, l), lens.Argmax(row)
	}
	return p, nil
}

func rank64(score []float64, label int) int {
	r := 0
	for _, v := range score {
		if v > score[label] {
			r++
		}
	}
	return r
}
