package experiment

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/dataset"
	"vitlens/vit/lens"
	"vitlens/vit/memory"
	"vitlens/vit/preprocess"
	"vitlens/vit/results"
	"vitlens/vit/vittest"
)

var testConfig = vittest.SmallConfig

func testBundle(t *testing.T) *bundle.Bundle {
	t.Helper()
	m := vittest.SharpModel(t)
	p, err := preprocess.PresetByName("google")
	if err != nil {
		t.Fatal(err)
	}
	return &bundle.Bundle{Model: m, Preset: p, Classes: []string{"a", "b", "c", "d"}}
}

func run(t *testing.T, b *bundle.Bundle, ds dataset.Dataset, dir string, spec Spec, shard, n int) Stats {
	t.Helper()
	return runWith(t, b, ds, dir, spec, shard, n, nil)
}

// runWith is run with the runner adjusted by set (when not nil).
func runWith(t *testing.T, b *bundle.Bundle, ds dataset.Dataset, dir string, spec Spec, shard, n int, set func(*Runner)) Stats {
	t.Helper()
	man := results.Manifest{Experiment: string(spec.Kind), Params: spec.Params(), ModelSHA256: "test",
		Config: b.Model.Config, Dataset: ds.Name(), Total: ShardImages(ds.Len(), 4, shard, n), ChunkSize: 4}
	if n > 1 {
		man.Shard = fmt.Sprintf("%d/%d", shard, n)
	}
	out, err := results.Create(dir, man, results.Parquet)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	r := &Runner{Bundle: b, Backend: lens.NewCPU(b.Model), Data: ds, Out: out, Spec: spec, Batch: 3, Shard: shard, NumShards: n}
	if set != nil {
		set(r)
	}
	st, err := r.Run()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func readAll[T any](t *testing.T, dir, table string) []T {
	t.Helper()
	var rows []T
	if err := results.ReadRows(dir, table, func(r T) error { rows = append(rows, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return rows
}

var extractSpec = Spec{Kind: Extract, Sites: vit.AllSites(), TopK: 5}

// The ranks table holds exactly what the lens says for each image.
func TestExtractMatchesLens(t *testing.T) {
	b := testBundle(t)
	ds, err := dataset.Open("folder", vittest.ImageFolder(t, 5, 20, 18, 1), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st := run(t, b, ds, dir, extractSpec, 0, 1)
	if st.Images != 15 || st.Skipped != 0 {
		t.Fatalf("stats %+v", st)
	}
	rows := readAll[RankRow](t, dir, "ranks")
	n := testConfig.NumTokens()
	if want := 15 * 4 * testConfig.Depth * n; len(rows) != want {
		t.Fatalf("%d rank rows, want %d", len(rows), want)
	}
	img, _ := ds.Image(7)
	px, _ := b.Preset.Apply(img, testConfig.ImageSize)
	res, err := lens.NewCPU(b.Model).Analyze([]*vit.Tensor{px}, lens.Request{Sites: vit.AllSites(), TopK: 5, Targets: []int{ds.Item(7).Label}})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, r := range rows {
		if r.Image != 7 {
			continue
		}
		s, _ := vit.ParseSite(r.Site)
		ro := res[0].At(s, int(r.Block))
		top := ro.TopOf(int(r.Token))
		if r.Rank != ro.Rank[r.Token] || r.Top1 != top[0] || r.Top5 != top[4] || r.TargetLogit != ro.TargetLogit[r.Token] || int(r.Label) != ds.Item(7).Label || r.PatchLabel != -1 {
			t.Fatalf("row %+v disagrees with the lens (rank %d, top %v)", r, ro.Rank[r.Token], top)
		}
		checked++
	}
	if checked != 4*testConfig.Depth*n {
		t.Fatalf("checked %d rows of image 7", checked)
	}
	rep, err := Summarize(dir, SummaryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	imgs := readAll[ImageRow](t, dir, "images")
	correct := 0
	for _, r := range imgs {
		if r.Correct {
			correct++
		}
	}
	if rep.Images != 15 || rep.Accuracy != float64(correct)/15 || len(rep.Blocks) != testConfig.Depth {
		t.Fatalf("summary %+v", rep)
	}
}

// An interrupted run resumes where it stopped, and shards merge into the
// same tables as one run.
func TestResumeAndShards(t *testing.T) {
	b := testBundle(t)
	ds, err := dataset.Open("folder", vittest.ImageFolder(t, 5, 20, 18, 1), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	whole := t.TempDir()
	run(t, b, ds, whole, extractSpec, 0, 1)
	want := readAll[RankRow](t, whole, "ranks")

	// Crash after chunk 1's parts were written but before its commit, and
	// before Finish: only chunk 1 must be redone.
	crashed := t.TempDir()
	run(t, b, ds, crashed, extractSpec, 0, 1)
	for _, f := range []string{"chunks/chunk-000001.done", "ranks.parquet", "images.parquet"} {
		if err := os.Remove(filepath.Join(crashed, f)); err != nil {
			t.Fatal(err)
		}
	}
	st := run(t, b, ds, crashed, extractSpec, 0, 1)
	if st.ResumedChunks != 3 || st.Images != 4 {
		t.Fatalf("resume redid %+v, want only chunk 1 (4 images)", st)
	}
	if got := readAll[RankRow](t, crashed, "ranks"); !reflect.DeepEqual(got, want) {
		t.Fatal("resumed run differs from an uninterrupted one")
	}

	s0, s1, merged := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "merged")
	run(t, b, ds, s0, extractSpec, 0, 2)
	run(t, b, ds, s1, extractSpec, 1, 2)
	if err := results.Merge(merged, []string{s0, s1}); err != nil {
		t.Fatal(err)
	}
	if got := readAll[RankRow](t, merged, "ranks"); !reflect.DeepEqual(got, want) {
		t.Fatal("merged shards differ from one run")
	}
}

// A committed chunk whose part was deleted, and one whose part was
// truncated, are found when the run is reopened and redone; the tables come
// out byte for byte as an uninterrupted run's.
func TestDamagedChunksRedone(t *testing.T) {
	b := testBundle(t)
	ds, err := dataset.Open("folder", vittest.ImageFolder(t, 5, 20, 18, 1), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	whole, damaged := t.TempDir(), t.TempDir()
	run(t, b, ds, whole, extractSpec, 0, 1)
	run(t, b, ds, damaged, extractSpec, 0, 1)
	if err := os.Remove(filepath.Join(damaged, "chunks", "ranks", "chunk-000001.parquet")); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(damaged, "chunks", "images", "chunk-000002.parquet"), 40); err != nil {
		t.Fatal(err)
	}
	if err := results.Verify(damaged); err == nil || !strings.Contains(err.Error(), "chunk 1: chunks/ranks/chunk-000001.parquet is missing") {
		t.Fatalf("Verify of the damaged folder: %v", err)
	}
	st := run(t, b, ds, damaged, extractSpec, 0, 1)
	if st.ResumedChunks != 2 || st.Images != 8 {
		t.Fatalf("resume redid %+v, want chunks 1 and 2 (8 images)", st)
	}
	for _, table := range []string{"ranks.parquet", "images.parquet", "skipped.parquet"} {
		want, _ := os.ReadFile(filepath.Join(whole, table))
		got, err := os.ReadFile(filepath.Join(damaged, table))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s after the repair differs from an uninterrupted run's (%v)", table, err)
		}
	}
	if err := results.Verify(damaged); err != nil {
		t.Error(err)
	}
}

// Files the dataset left out while indexing are rows of the skipped table
// (image -1), once, in a whole run and in merged shards alike.
func TestIndexSkipsInSkippedTable(t *testing.T) {
	b := testBundle(t)
	root := vittest.ImageFolder(t, 2, 20, 18, 1)
	for _, p := range []string{filepath.Join(root, "README"), filepath.Join(root, "class1", "notes.txt")} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := dataset.Open("folder", root, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []SkipRow{
		{Image: -1, ID: filepath.Join(root, "README"), Reason: "not a class folder"},
		{Image: -1, ID: filepath.Join(root, "class1", "notes.txt"), Reason: "not an image file"},
	}
	dir := t.TempDir()
	if st := run(t, b, ds, dir, extractSpec, 0, 1); st.Skipped != 0 {
		t.Errorf("index skips counted as skipped images: %+v", st)
	}
	if got := readAll[SkipRow](t, dir, "skipped"); !reflect.DeepEqual(got, want) {
		t.Errorf("skipped table %+v, want %+v", got, want)
	}
	s0, s1, merged := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "merged")
	run(t, b, ds, s0, extractSpec, 0, 2)
	run(t, b, ds, s1, extractSpec, 1, 2)
	if err := results.Merge(merged, []string{s0, s1}); err != nil {
		t.Fatal(err)
	}
	if got := readAll[SkipRow](t, merged, "skipped"); !reflect.DeepEqual(got, want) {
		t.Errorf("merged skipped table %+v, want %+v", got, want)
	}
}

// Images without masks cannot be token-perturbed: they are skipped, counted
// and recorded with the reason, never silently analysed.
func TestPerturbTokensSkipsWithoutMasks(t *testing.T) {
	b := testBundle(t)
	ds, err := dataset.Open("folder", vittest.ImageFolder(t, 2, 20, 18, 1), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st := run(t, b, ds, dir, Spec{Kind: PerturbTokens, Sites: []vit.Site{vit.SiteHS}, TopK: 5, Drop: DropContext}, 0, 1)
	if st.Images != 0 || st.Skipped != 6 {
		t.Fatalf("stats %+v", st)
	}
	if skips := readAll[SkipRow](t, dir, "skipped"); len(skips) != 6 || skips[0].Reason == "" {
		t.Fatalf("skipped table %+v", skips)
	}
}

func TestKeptTokens(t *testing.T) {
	labels := []uint8{1, 0, 0, 1}
	if got := keptTokens(labels, DropContext, 1); !reflect.DeepEqual(got, []int{0, 1, 4}) {
		t.Fatalf("drop context keeps %v", got)
	}
	if got := keptTokens(labels, DropClassLabel, 1); !reflect.DeepEqual(got, []int{0, 2, 3}) {
		t.Fatalf("drop class labels keeps %v", got)
	}
}

func TestMemoriesRun(t *testing.T) {
	b := testBundle(t)
	ds, err := dataset.Open("folder", vittest.ImageFolder(t, 3, 20, 18, 1), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []memory.Layer{memory.MLP, memory.Attn} {
		dir := t.TempDir()
		site := vit.SiteMLP
		if l == memory.Attn {
			site = vit.SiteAttn
		}
		run(t, b, ds, dir, Spec{Kind: Memories, Sites: []vit.Site{site}, TopK: 5, Layer: l, Seed: 1}, 0, 1)
		rows := readAll[MemoryRow](t, dir, "memories")
		if want := 9 * testConfig.Depth * testConfig.NumTokens(); len(rows) != want {
			t.Fatalf("%s: %d memory rows, want %d", l, len(rows), want)
		}
		cv := readAll[ClassValueRow](t, dir, "class_value")
		if len(cv) != testConfig.Depth*testConfig.Classes {
			t.Fatalf("%s: %d class-value rows", l, len(cv))
		}
		// Shards of a memories run merge into the same tables, class_value included.
		s0, s1, merged := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "merged")
		spec := Spec{Kind: Memories, Sites: []vit.Site{site}, TopK: 5, Layer: l, Seed: 1}
		run(t, b, ds, s0, spec, 0, 2)
		run(t, b, ds, s1, spec, 1, 2)
		if err := results.Merge(merged, []string{s0, s1}); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(readAll[MemoryRow](t, merged, "memories"), rows) || !reflect.DeepEqual(readAll[ClassValueRow](t, merged, "class_value"), cv) {
			t.Fatalf("%s: merged shards differ from one run", l)
		}
		rep, err := SummarizeMemories(dir, 50, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Blocks) != testConfig.Depth || rep.Blocks[0].Agreement < 0 || rep.Blocks[0].Agreement > 1 {
			t.Fatalf("%s: report %+v", l, rep)
		}
		// Value vectors: the most-used memories, counted here from the rows,
		// with the classes memory.ValueClasses gives.
		if len(rep.Values) != MostUsedMemories*testConfig.Depth || len(rep.Notes) != 0 {
			t.Fatalf("%s: value vectors %+v, notes %v", l, rep.Values, rep.Notes)
		}
		uses := map[[2]int32]int{}
		for _, r := range rows {
			for _, j := range []int32{r.Mem1, r.Mem2, r.Mem3, r.Mem4, r.Mem5} {
				uses[[2]int32{r.Block, j}]++
			}
		}
		for _, v := range rep.Values {
			top := memory.ValueClasses(b.Model, v.Block, l)[v.Memory]
			if v.Uses != uses[[2]int32{int32(v.Block), int32(v.Memory)}] || !slices.Equal(v.Classes, top.Classes[:testConfig.Classes]) {
				t.Errorf("%s block %d memory %d: %d uses, classes %v; want %d, %v", l, v.Block, v.Memory, v.Uses, v.Classes, uses[[2]int32{int32(v.Block), int32(v.Memory)}], top.Classes)
			}
			for j := int32(0); j < int32(memory.TopK*8); j++ {
				if uses[[2]int32{int32(v.Block), j}] > v.Uses && !slices.ContainsFunc(rep.Values, func(w ValueVector) bool { return w.Block == v.Block && w.Memory == int(j) }) {
					t.Errorf("%s block %d: memory %d is used more than listed memory %d", l, v.Block, j, v.Memory)
				}
			}
		}
	}
}

// A corrupt image is skipped, counted and recorded; the rest of the run goes on.
func TestUnreadableImageIsSkipped(t *testing.T) {
	b := testBundle(t)
	root := vittest.ImageFolder(t, 2, 20, 18, 1)
	if err := os.WriteFile(filepath.Join(root, "class1", "img00.png"), []byte("\x89PNG\r\n\x1a\ncut"), 0o644); err != nil {
		t.Fatal(err)
	}
	ds, err := dataset.Open("folder", root, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st := run(t, b, ds, dir, extractSpec, 0, 1)
	if st.Images != 5 || st.Skipped != 1 {
		t.Fatalf("stats %+v, want 5 images and 1 skipped", st)
	}
	skips := readAll[SkipRow](t, dir, "skipped")
	if len(skips) != 1 || !strings.Contains(skips[0].Reason, "img00.png") {
		t.Fatalf("skipped table %+v should name the file", skips)
	}
	if imgs := readAll[ImageRow](t, dir, "images"); len(imgs) != 5 {
		t.Fatalf("%d image rows, want 5", len(imgs))
	}
}

// masked gives every image a fixed checkerboard of class/context patch
// labels, standing in for ImageNet-S segmentations; image 5 is all context
// (no class-labelled token: dropping the context leaves [CLS] alone).
type masked struct{ dataset.Dataset }

func (m masked) PatchLabels(i, grid int) ([]uint8, bool, error) {
	l := make([]uint8, grid*grid)
	for p := range l {
		if i != 5 {
			l[p] = uint8((p/grid + p%grid + i) % 2)
		}
	}
	return l, true, nil
}

// With masks, perturb-tokens keeps exactly [CLS] and the wanted tokens (with
// their original indices), and extract fills patch_label so the summary can
// compare class- and context-labelled tokens.
func TestMaskedPerturbationAndContext(t *testing.T) {
	b := testBundle(t)
	folder, err := dataset.Open("folder", vittest.ImageFolder(t, 2, 20, 18, 1), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ds := masked{folder}
	g := testConfig.GridSize()
	perturbed := map[string]string{}
	for _, drop := range []string{DropContext, DropClassLabel} {
		dir := t.TempDir()
		perturbed[drop] = dir
		st := run(t, b, ds, dir, Spec{Kind: PerturbTokens, Sites: []vit.Site{vit.SiteHS}, TopK: 5, Drop: drop}, 0, 1)
		if st.Images != 6 || st.Skipped != 0 {
			t.Fatalf("%s: %+v", drop, st)
		}
		want := uint8(1)
		if drop == DropClassLabel {
			want = 0
		}
		for _, r := range readAll[RankRow](t, dir, "ranks") {
			if r.Token == 0 {
				continue
			}
			labels, _, _ := ds.PatchLabels(int(r.Image), g)
			if labels[r.Token-1] != want || r.PatchLabel != int32(want) {
				t.Fatalf("%s kept token %d of image %d labelled %d", drop, r.Token, r.Image, labels[r.Token-1])
			}
		}
		imgs := readAll[ImageRow](t, dir, "images")
		if imgs[0].Tokens != int32(1+g*g/2) {
			t.Fatalf("%s: image 0 ran with %d tokens, want %d", drop, imgs[0].Tokens, 1+g*g/2)
		}
	}
	dir := t.TempDir()
	run(t, b, ds, dir, Spec{Kind: Extract, Sites: vit.AllSites(), TopK: 5, Masks: true}, 0, 1)
	rep, err := Summarize(dir, SummaryOptions{Permutation: 50, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rep.Blocks {
		if math.IsNaN(row.ClassMinusCtx) || row.ClassCtxP < 0 || row.ClassCtxP > 1 {
			t.Fatalf("block %d: class-context %v, p %v", row.Block, row.ClassMinusCtx, row.ClassCtxP)
		}
		if row.Block > 0 && (math.IsNaN(row.AttnClassMinusCtx) || math.IsNaN(row.MLPClassMinusCtx)) {
			t.Fatalf("block %d: no compute_context_diff: %+v", row.Block, row)
		}
	}
	last := rep.Blocks[len(rep.Blocks)-1]

	// The comparison of print_context_perturb, recomputed here from the rows.
	depth := int32(testConfig.Depth)
	for drop, pdir := range perturbed {
		prep, err := Summarize(pdir, SummaryOptions{Unperturbed: dir})
		if err != nil {
			t.Fatal(err)
		}
		c := prep.ContextPerturbation
		if c == nil {
			t.Fatalf("%s: no comparison", drop)
		}
		hit, n := map[int32]int{}, map[int32]int{}
		var pooledHit, pooled int
		for _, r := range readAll[RankRow](t, pdir, "ranks") {
			if r.Block != depth-1 {
				continue
			}
			n[r.Image]++
			if r.Rank == 0 {
				hit[r.Image]++
			}
			if r.Token > 0 {
				pooled++
				if r.Rank == 0 {
					pooledHit++
				}
			}
		}
		var share float64
		for im := range n {
			share += float64(hit[im]) / float64(n[im])
		}
		share /= float64(len(n))
		wantBase, wantEmpty := last.ClassTop1, 1
		if drop == DropClassLabel {
			wantBase, wantEmpty = last.ContextTop1, 0
		}
		if len(n) != 6 || c.Images != 6 || c.ImagesWithoutImageTokens != wantEmpty ||
			math.Abs(c.PerturbedSequenceShare-share) > 1e-12 ||
			math.Abs(c.PerturbedImageTop1-float64(pooledHit)/float64(pooled)) > 1e-12 || c.UnperturbedTop1 != wantBase {
			t.Errorf("%s: comparison %+v; from the rows: %d images, share %g, pooled %d/%d, baseline %g", drop, c, len(n), share, pooledHit, pooled, wantBase)
		}
	}
	if _, err := Summarize(dir, SummaryOptions{Unperturbed: dir}); err == nil || !strings.Contains(err.Error(), "perturb-tokens") {
		t.Errorf("comparing an extract with itself: %v", err)
	}
}

// The paper's experiments run unchanged on models with a distillation token
// or registers: every token has its rows, perturb-tokens keeps the prefix
// tokens, and the summary's image-token share counts patches only.
func TestPrefixTokensInExperiments(t *testing.T) {
	for name, edit := range map[string]func(*vit.Config){
		"distilled": func(c *vit.Config) { c.DistToken = true },
		"registers": func(c *vit.Config) { c.Registers = 2 },
	} {
		t.Run(name, func(t *testing.T) {
			c := testConfig
			edit(&c)
			m, err := vit.NewRandom(c, 7)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range []*vit.Linear{&m.Head, &m.HeadCLS, &m.HeadDist} { // sharp, as vittest.SharpModel
				*h = h.Unpacked()
				for i := range h.W {
					h.W[i] *= 30
				}
			}
			b := testBundle(t)
			b.Model = m
			folder, err := dataset.Open("folder", vittest.ImageFolder(t, 2, 20, 18, 1), dataset.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ds := masked{folder}
			first, g := c.FirstImageToken(), c.GridSize()
			dir := t.TempDir()
			run(t, b, ds, dir, Spec{Kind: Extract, Sites: []vit.Site{vit.SiteHS}, TopK: 5, Masks: true}, 0, 1)
			rows := readAll[RankRow](t, dir, "ranks")
			if want := 6 * c.Depth * c.NumTokens(); len(rows) != want {
				t.Fatalf("%d rank rows, want %d", len(rows), want)
			}
			hit, n := map[int32]int{}, map[int32]int{}
			for _, r := range rows {
				if int(r.Token) < first && r.PatchLabel != -1 {
					t.Fatalf("prefix token %d has patch label %d", r.Token, r.PatchLabel)
				}
				if r.Block == int32(c.Depth-1) && int(r.Token) >= first {
					n[r.Image]++
					if r.Rank == 0 {
						hit[r.Image]++
					}
				}
			}
			share := 0.0
			for img, k := range n {
				share += float64(hit[img]) / float64(k) / float64(len(n))
			}
			rep, err := Summarize(dir, SummaryOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(rep.IdentifiableTokenShare-share) > 1e-12 {
				t.Errorf("identifiable token share %v, patches only give %v", rep.IdentifiableTokenShare, share)
			}

			pdir := t.TempDir()
			run(t, b, ds, pdir, Spec{Kind: PerturbTokens, Sites: []vit.Site{vit.SiteHS}, TopK: 5, Drop: DropContext}, 0, 1)
			kept := map[int32]map[int32]bool{}
			for _, r := range readAll[RankRow](t, pdir, "ranks") {
				if kept[r.Image] == nil {
					kept[r.Image] = map[int32]bool{}
				}
				kept[r.Image][r.Token] = true
				if int(r.Token) >= first {
					labels, _, _ := ds.PatchLabels(int(r.Image), g)
					if labels[int(r.Token)-first] != 1 {
						t.Fatalf("perturb-tokens kept context token %d of image %d", r.Token, r.Image)
					}
				}
			}
			for img, toks := range kept {
				for tok := range first {
					if !toks[int32(tok)] {
						t.Fatalf("image %d: prefix token %d dropped", img, tok)
					}
				}
			}
		})
	}
}
