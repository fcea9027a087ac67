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
// ranks and top-5 classes, target logits within modelTol, entropy and KL
// within statsTol, through the plain lens and a tuned one.
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
			Dataset: ds.Name(), Total: ds.Len(), ChunkSize: 4, Schema: spec.Tables()}
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

	read := func(dir string) []experiment.RankRow {
		var rows []experiment.RankRow
		if err := results.ReadRows(dir, "ranks", func(r experiment.RankRow) error { rows = append(rows, r); return nil }); err != nil {
			t.Fatal(err)
		}
		return rows
	}
	// within is |g−w|/max(1, |w|) (NaN fails every bound).
	within := func(g, w float32) float64 {
		d := math.Abs(float64(g-w)) / math.Max(1, math.Abs(float64(w)))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		return d
	}
	plainRows := read(piped)
	for _, tuned := range []bool{false, true} {
		gpuDir := piped
		if tuned {
			spec.Lens = randomTranslators(m.Config)
			gpuDir = extract(b, 2, 2)
		}
		want, got := read(extract(lens.NewCPU(m), 2, 2)), read(gpuDir)
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("%d GPU rows, %d CPU rows", len(got), len(want))
		}
		worstLogit, worstStats := 0.0, 0.0
		for i := range got {
			g, w := got[i], want[i]
			dl, dh, dk := within(g.TargetLogit, w.TargetLogit), within(g.Entropy, w.Entropy), within(g.KLLast, w.KLLast)
			worstLogit, worstStats = math.Max(worstLogit, dl), math.Max(worstStats, math.Max(dh, dk))
			g.TargetLogit, g.Entropy, g.KLLast = w.TargetLogit, w.Entropy, w.KLLast
			if g != w || dl > modelTol || dh > statsTol || dk > statsTol {
				t.Fatalf("tuned %v, row %d: GPU %+v, CPU %+v", tuned, i, got[i], w)
			}
		}
		changed := 0
		for i := range got {
			if got[i].KLLast != plainRows[i].KLLast {
				changed++
			}
		}
		if tuned && changed == 0 {
			t.Fatal("the tuned lens changed no row")
		}
		t.Logf("tuned lens %v: %d rows (%d changed by it): ranks and top-5 identical, target logits within %.2g, entropy and KL within %.2g",
			tuned, len(got), changed, worstLogit, worstStats)
	}
}
