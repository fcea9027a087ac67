package probe

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/dataset"
	"vitlens/vit/lens"
	"vitlens/vit/preprocess"
	"vitlens/vit/results"
	"vitlens/vit/vittest"
)

// The probe readout against scikit-learn's Ridge(alpha=1) on ±1 targets
// (tools/reference/make_explain_golden.py, testdata/probe/ridge_probe.json):
// predictions to 1e-9 relative, accuracy and ranks exactly.
func TestFitMatchesSklearn(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "probe", "ridge_probe.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Classes, Tokens, Dim int
		Alpha                float64
		TrainFeatures        [][][]float32 `json:"train_features"`
		TrainLabels          []int         `json:"train_labels"`
		TestFeatures         [][][]float32 `json:"test_features"`
		TestLabels           []int         `json:"test_labels"`
		Predictions          [][][]float64
		Accuracy             []float64
		Ranks                [][]int
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("ridge_probe.json: %v", err)
	}
	column := func(f [][][]float32, tok int) []float32 {
		var x []float32
		for _, row := range f {
			x = append(x, row[tok]...)
		}
		return x
	}
	for tok := 0; tok < g.Tokens; tok++ {
		p, err := Fit(column(g.TrainFeatures, tok), g.TrainLabels, column(g.TestFeatures, tok), g.TestLabels, g.Dim, g.Classes, g.Alpha)
		if err != nil {
			t.Fatal(err)
		}
		hit := 0
		for i, l := range g.TestLabels {
			for c := 0; c < g.Classes; c++ {
				want := g.Predictions[tok][i][c]
				if d := math.Abs(p.Scores[i*g.Classes+c] - want); d > 1e-9*math.Max(1, math.Abs(want)) {
					t.Fatalf("token %d row %d class %d: %g, sklearn %g", tok, i, c, p.Scores[i*g.Classes+c], want)
				}
			}
			if p.Ranks[i] != g.Ranks[tok][i] {
				t.Fatalf("token %d row %d: rank %d, sklearn %d", tok, i, p.Ranks[i], g.Ranks[tok][i])
			}
			if p.Top1[i] == l {
				hit++
			}
		}
		if acc := float64(hit) / float64(len(g.TestLabels)); acc != g.Accuracy[tok] {
			t.Fatalf("token %d: accuracy %g, sklearn %g", tok, acc, g.Accuracy[tok])
		}
	}
}

var smallConfig = vit.Config{ImageSize: 16, PatchSize: 8, Channels: 3, Dim: 8, Depth: 2, Heads: 2, MLPDim: 16,
	Classes: 3, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}

func runProbe(t *testing.T, b *bundle.Bundle, train, test dataset.Dataset, budget int64) string {
	t.Helper()
	spec := Spec{Sites: DefaultSites, Alpha: 1, MemoryBytes: budget, Train: "folder"}
	dir := t.TempDir()
	man := results.Manifest{Experiment: "probe", Params: spec.Params(), ModelSHA256: "test", Config: smallConfig,
		Dataset: test.Name(), Total: test.Len(), ChunkSize: test.Len()}
	out, err := results.Create(dir, man, results.Parquet)
	if err != nil {
		t.Fatal(err)
	}
	st, err := (&Runner{Bundle: b, Train: train, Test: test, Out: out, Spec: spec}).Run()
	if err != nil {
		t.Fatal(err)
	}
	if st.Train != train.Len() || st.Test != test.Len() {
		t.Fatalf("stats %+v", st)
	}
	return dir
}

func readRows(t *testing.T, dir string) []Row {
	var rows []Row
	if err := results.ReadRows(dir, "probe", func(r Row) error { rows = append(rows, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestRunner(t *testing.T) {
	m, err := vit.NewRandom(smallConfig, 3)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := preprocess.PresetByName("google")
	b := &bundle.Bundle{Model: m, Preset: p, Classes: []string{"a", "b", "c"}}
	train, err := dataset.Open("folder", vittest.ImageFolder(t, 6, 16, 16, 1), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	test, err := dataset.Open("folder", vittest.ImageFolder(t, 2, 16, 16, 2), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	one := runProbe(t, b, train, test, 0)
	rows := readRows(t, one)
	n := smallConfig.NumTokens()
	if want := test.Len() * 3 * smallConfig.Depth * n; len(rows) != want {
		t.Fatalf("%d rows, want %d", len(rows), want)
	}
	// The lens columns are the lens's own readout of the test image.
	img, _ := test.Image(4)
	px, _ := p.Apply(img, smallConfig.ImageSize)
	res, err := lens.NewCPU(m).Analyze([]*vit.Tensor{px}, lens.Request{Sites: DefaultSites, TopK: 1, Targets: []int{test.Item(4).Label}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Image != 4 {
			continue
		}
		s, _ := vit.ParseSite(r.Site)
		if ro := res[0].At(s, int(r.Block)); ro.Rank[r.Token] != r.LensRank || ro.Top[r.Token] != r.LensTop1 {
			t.Fatalf("row %+v: lens rank %d top %d", r, ro.Rank[r.Token], ro.Top[r.Token])
		}
	}
	// Splitting the pairs into groups (one pass each) changes nothing.
	grouped := readRows(t, runProbe(t, b, train, test, 1))
	key := func(r Row) string { return fmt.Sprint(r.Site, r.Block, r.Token, r.Image) }
	slices.SortFunc(rows, func(a, b Row) int { return cmpStr(key(a), key(b)) })
	slices.SortFunc(grouped, func(a, b Row) int { return cmpStr(key(a), key(b)) })
	if !slices.Equal(rows, grouped) {
		t.Fatal("grouped passes give different probes")
	}
	rep, err := Summarize(one)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Images != test.Len() || len(rep.Layers) != 3*smallConfig.Depth || len(rep.Tokens) != 3*smallConfig.Depth*n {
		t.Fatalf("report: %d images, %d layers, %d tokens", rep.Images, len(rep.Layers), len(rep.Tokens))
	}
	sums, err := TokenRankSums(one)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != test.Len() || len(sums[0]) != smallConfig.NumPatches() {
		t.Fatalf("rank sums %v", sums)
	}
	var want float64
	for _, r := range rows {
		if r.Image == 0 && r.Site == "hs" && r.Token == 2 {
			want += float64(r.Rank)
		}
	}
	if sums[0][1] != want {
		t.Fatalf("rank sum of token 2: %g, want %g", sums[0][1], want)
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
