package gpu

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/dataset"
	"vitlens/vit/experiment"
	"vitlens/vit/lens"
	"vitlens/vit/preprocess"
	"vitlens/vit/results"
	"vitlens/vit/vittest"
)

// extract on the GPU, pipelined (chunks decoded ahead, two calls in flight)
// and not, writes byte-equal tables; and its rows are the CPU's: the same
// ranks and top-5 classes, target logits within modelTol (entropy and KL
// are the CPU's alone).
func TestExtractPipelinedEqualsUnpipelinedAndCPU(t *testing.T) {
	m := vittest.SharpModel(t)
	b := newBackend(t, m)
	p, err := preprocess.PresetByName("google")
	if err != nil {
		t.Fatal(err)
	}
	bun := &bundle.Bundle{Model: m, Preset: p, Classes: []string{"a", "b", "c", "d"}}
	ds, err := dataset.Open("folder", vittest.ImageFolder(t, 5, 20, 18, 1), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	spec := experiment.Spec{Kind: experiment.Extract, Sites: vit.AllSites(), TopK: 5}
	extract := func(backend lens.Backend, ahead, inflight int) string {
		dir := t.TempDir()
		man := results.Manifest{Experiment: "extract", Params: spec.Params(), ModelSHA256: "test", Config: m.Config,
			Dataset: ds.Name(), Total: ds.Len(), ChunkSize: 4}
		out, err := results.Create(dir, man, results.Parquet)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		r := &experiment.Runner{Bundle: bun, Backend: backend, Data: ds, Out: out, Spec: spec, Batch: 3,
			NumShards: 1, DecodeAhead: ahead, InFlight: inflight}
		if _, err := r.Run(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	plain, piped := extract(b, 0, 0), extract(b, 2, 2)
	for _, table := range []string{"ranks", "images", "skipped"} {
		want, err1 := os.ReadFile(filepath.Join(plain, table+".parquet"))
		got, err2 := os.ReadFile(filepath.Join(piped, table+".parquet"))
		if err1 != nil || err2 != nil || !slices.Equal(got, want) {
			t.Errorf("%s: the pipelined GPU run's table differs from the unpipelined one's (%v, %v)", table, err1, err2)
		}
	}

	cpu := extract(lens.NewCPU(m), 2, 2)
	read := func(dir string) []experiment.RankRow {
		var rows []experiment.RankRow
		if err := results.ReadRows(dir, "ranks", func(r experiment.RankRow) error { rows = append(rows, r); return nil }); err != nil {
			t.Fatal(err)
		}
		return rows
	}
	want, got := read(cpu), read(piped)
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("%d GPU rows, %d CPU rows", len(got), len(want))
	}
	worst := 0.0
	for i := range got {
		g, w := got[i], want[i]
		d := math.Abs(float64(g.TargetLogit-w.TargetLogit)) / math.Max(1, math.Abs(float64(w.TargetLogit)))
		worst = math.Max(worst, d)
		g.TargetLogit = w.TargetLogit
		g.Entropy, g.KLLast = w.Entropy, w.KLLast // the GPU lens computes neither (NaN)
		if g != w || d > modelTol {
			t.Fatalf("row %d: GPU %+v, CPU %+v", i, got[i], w)
		}
	}
	t.Logf("%d rows: ranks and top-5 identical, target logits within %.2g", len(got), worst)
}
