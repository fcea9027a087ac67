package results

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go/format"
)

type RankRow struct {
	Image       int32   `parquet:"image"`
	Label       int32   `parquet:"label"`
	Block       int32   `parquet:"block"`
	Site        string  `parquet:"site,dict"`
	Token       int32   `parquet:"token"`
	Rank        int32   `parquet:"rank"`
	Top1        int32   `parquet:"top1"`
	Top2        int32   `parquet:"top2"`
	Top3        int32   `parquet:"top3"`
	Top4        int32   `parquet:"top4"`
	Top5        int32   `parquet:"top5"`
	TargetLogit float32 `parquet:"target_logit"`
}

// SummaryRow is a second table written in the same chunks.
type SummaryRow struct {
	Image   int32   `parquet:"image"`
	Correct bool    `parquet:"correct"`
	Loss    float64 `parquet:"loss"`
	Name    string  `parquet:"name"`
}

const testChunkSize = 4 // images per chunk

var sites = []string{"resid", "attn", "mlp", "attn_out"}

// rankRows makes rows of chunk's images, distinct per chunk, with floats that
// do not round-trip through a careless decimal format.
func rankRows(chunk, perImage int) []RankRow {
	var rows []RankRow
	for img := chunk * testChunkSize; img < (chunk+1)*testChunkSize; img++ {
		for i := range perImage {
			rows = append(rows, RankRow{
				Image: int32(img), Label: int32(img % 7), Block: int32(i % 12), Site: sites[i*(chunk+1)%4], // dictionaries differ by chunk
				Token: int32(i % 197), Rank: int32((img*31 + i) % 1000),
				Top1: int32(i), Top2: int32(i + 1), Top3: int32(i + 2), Top4: int32(i + 3), Top5: int32(i + 4),
				TargetLogit: float32(img)*0.1 + float32(i)/3,
			})
		}
	}
	return rows
}

func summaryRows(chunk int) []SummaryRow {
	var rows []SummaryRow
	for img := chunk * testChunkSize; img < (chunk+1)*testChunkSize; img++ {
		rows = append(rows, SummaryRow{Image: int32(img), Correct: img%2 == 0, Loss: 1.0 / float64(img+3), Name: fmt.Sprintf("img \"%d\", n%d", img, img)})
	}
	return rows
}

func testManifest() Manifest {
	seed := uint64(7)
	return Manifest{
		Tool: "vitlens", Version: "test", Command: []string{"vitlens", "extract"}, Experiment: "extract",
		Params:    map[string]string{"sites": "resid,attn,mlp", "topk": "5"},
		ModelPath: "m.safetensors", ModelSHA256: "aaaa", Family: "timm", Preset: "vit_b16",
		Dataset: "imagenet-s", DatasetRoot: "/data", Selection: "partition=validation limit=0 classes-only=", ImagesSHA256: "1234", Total: 5 * testChunkSize,
		ChunkSize: testChunkSize, Seed: &seed, Backend: "cpu", Created: time.Now().UTC(),
	}
}

// writeChunks writes and commits both tables of chunks.
func writeChunks(t *testing.T, r *Run, chunks ...int) {
	t.Helper()
	for _, c := range chunks {
		if err := WriteChunk(r, "ranks", c, rankRows(c, 9)); err != nil {
			t.Fatal(err)
		}
		if err := WriteChunk(r, "summary", c, summaryRows(c)); err != nil {
			t.Fatal(err)
		}
		if err := r.CommitChunk(c); err != nil {
			t.Fatal(err)
		}
	}
}

func readAll[T any](t *testing.T, dir, table string) []T {
	t.Helper()
	var rows []T
	if err := ReadRows(dir, table, func(r T) error { rows = append(rows, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return rows
}

func wantRanks(chunks ...int) []RankRow {
	var rows []RankRow
	for _, c := range chunks {
		rows = append(rows, rankRows(c, 9)...)
	}
	return rows
}

func wantSummary(chunks ...int) []SummaryRow {
	var rows []SummaryRow
	for _, c := range chunks {
		rows = append(rows, summaryRows(c)...)
	}
	return rows
}

func checkRows[T any](t *testing.T, what string, got, want []T) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("%s: row %d = %+v, want %+v", what, i, got[i], want[i])
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, f := range []Format{Parquet, CSV} {
		t.Run(string(f), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			r, err := Create(dir, testManifest(), f)
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, r, 2, 0, 1, 4, 3) // out of order: tables follow chunk order
			checkRows(t, "ranks before Finish", readAll[RankRow](t, dir, "ranks"), wantRanks(0, 1, 2, 3, 4))
			for range 2 { // Finish is idempotent
				if err := r.Finish(); err != nil {
					t.Fatal(err)
				}
			}
			for _, table := range []string{"ranks", "summary"} {
				if _, err := os.Stat(filepath.Join(dir, table+"."+string(f))); err != nil {
					t.Fatal(err)
				}
			}
			checkRows(t, "ranks", readAll[RankRow](t, dir, "ranks"), wantRanks(0, 1, 2, 3, 4))
			checkRows(t, "summary", readAll[SummaryRow](t, dir, "summary"), wantSummary(0, 1, 2, 3, 4))

			m, err := ReadManifest(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.SameRun(r.Manifest()); err != nil || m.Format != f || *m.Seed != 7 {
				t.Fatalf("manifest read back: %+v, %v", m, err)
			}
		})
	}
}

func TestCSVHeader(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, testManifest(), CSV)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, r, 0)
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "ranks.csv"))
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(b), "\n")
	if want := "image,label,block,site,token,rank,top1,top2,top3,top4,top5,target_logit"; head != want {
		t.Fatalf("header %q, want %q", head, want)
	}
}

// The finished Parquet table keeps the parts' encodings, which shows that
// concatenation copied their pages instead of re-encoding them plainly.
func TestParquetKeepsDictionary(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, testManifest(), Parquet)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, r, 0, 1)
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
	f, pf, err := openParquet(dirStore(dir), "ranks.parquet")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	md := pf.Metadata()
	if len(md.RowGroups) != 2 {
		t.Errorf("%d row groups, want one per chunk", len(md.RowGroups))
	}
	for _, rg := range md.RowGroups {
		for _, cc := range rg.Columns {
			if cc.MetaData.PathInSchema[0] == "site" && !slices.Contains(cc.MetaData.Encoding, format.RLEDictionary) {
				t.Errorf("site column encodings %v, want dictionary", cc.MetaData.Encoding)
			}
			if cc.MetaData.Codec != format.Zstd {
				t.Errorf("column %v codec %v, want zstd", cc.MetaData.PathInSchema, cc.MetaData.Codec)
			}
		}
	}
}

func TestResume(t *testing.T) {
	for _, f := range []Format{Parquet, CSV} {
		t.Run(string(f), func(t *testing.T) {
			dir := t.TempDir()
			r, err := Create(dir, testManifest(), f)
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, r, 0, 1)
			// The crash: chunk 2's ranks landed but the process died before its
			// summary and commit, in the middle of another atomic write.
			if err := WriteChunk(r, "ranks", 2, rankRows(2, 9)); err != nil {
				t.Fatal(err)
			}
			stray := filepath.Join(dir, chunksDir, "summary", ".chunk-000002."+string(f)+tmpMarker+"123")
			if err := os.WriteFile(stray, []byte("half a fi"), 0o644); err != nil {
				t.Fatal(err)
			}

			r.Close() // the process ends
			m := testManifest()
			m.Created = m.Created.Add(time.Hour) // a later session; not an identity field
			m.Backend = "webgpu"
			r, err = Create(dir, m, f)
			if err != nil {
				t.Fatal(err)
			}
			for c, want := range []bool{true, true, false, false, false} {
				if r.ChunkDone(c) != want {
					t.Errorf("ChunkDone(%d) = %v, want %v", c, !want, want)
				}
			}
			if r.Manifest().Backend != "cpu" {
				t.Errorf("resumed manifest backend %q, want the original %q", r.Manifest().Backend, "cpu")
			}
			for _, p := range []string{stray, partPath(dir, "ranks", 2, f)} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s survived reopening (%v)", p, err)
				}
			}
			checkRows(t, "ranks while interrupted", readAll[RankRow](t, dir, "ranks"), wantRanks(0, 1))
			if err := WriteChunk(r, "ranks", 1, rankRows(1, 9)); err == nil {
				t.Error("rewriting committed chunk 1: no error")
			}
			writeChunks(t, r, 2, 3, 4)
			if err := r.Finish(); err != nil {
				t.Fatal(err)
			}
			checkRows(t, "ranks", readAll[RankRow](t, dir, "ranks"), wantRanks(0, 1, 2, 3, 4))
			checkRows(t, "summary", readAll[SummaryRow](t, dir, "summary"), wantSummary(0, 1, 2, 3, 4))
		})
	}
}

// A chunk may have no rows for a table, or no part at all.
func TestEmptyChunks(t *testing.T) {
	for _, f := range []Format{Parquet, CSV} {
		t.Run(string(f), func(t *testing.T) {
			dir := t.TempDir()
			r, err := Create(dir, testManifest(), f)
			if err != nil {
				t.Fatal(err)
			}
			for c, rows := range [][]RankRow{nil, rankRows(1, 2), nil} {
				if err := WriteChunk(r, "ranks", c, rows); err != nil {
					t.Fatal(err)
				}
				if c == 1 {
					if err := WriteChunk(r, "summary", c, summaryRows(c)); err != nil {
						t.Fatal(err)
					}
				}
				if err := r.CommitChunk(c); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Finish(); err != nil {
				t.Fatal(err)
			}
			checkRows(t, "ranks", readAll[RankRow](t, dir, "ranks"), rankRows(1, 2))
			checkRows(t, "summary", readAll[SummaryRow](t, dir, "summary"), summaryRows(1))
		})
	}
}

// A chunk written after Finish (a run finished too early) makes the finished
// table stale; the next Finish must rebuild it.
func TestFinishAfterMoreChunks(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, testManifest(), Parquet)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, r, 0)
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
	writeChunks(t, r, 1)
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
	checkRows(t, "ranks", readAll[RankRow](t, dir, "ranks"), wantRanks(0, 1))
}

func TestSameRun(t *testing.T) {
	other := uint64(8)
	for _, tc := range []struct {
		change func(*Manifest)
		want   string // "" for the same run
	}{
		{func(m *Manifest) {}, ""},
		{func(m *Manifest) { m.Command = []string{"other"}; m.Version = "v2"; m.Backend = "gpu" }, ""},
		{func(m *Manifest) { m.ModelSHA256 = "bbbb" }, "was made with --model of sha256 aaaa, not bbbb"},
		{func(m *Manifest) { m.Experiment = "perturb-attn" }, "the command extract, not perturb-attn"},
		{func(m *Manifest) { m.Params["topk"] = "10" }, "--topk 5, not 10"},
		{func(m *Manifest) { m.Params["mode"] = "zero" }, "no --mode, not --mode zero"},
		{func(m *Manifest) { m.Params["per_block"] = "true" }, "no --per-block, not --per-block true"},
		{func(m *Manifest) { delete(m.Params, "sites") }, "--sites resid,attn,mlp, not without it"},
		{func(m *Manifest) { m.Seed = &other }, "--random 7, not 8"},
		{func(m *Manifest) { m.Seed = nil }, "--random 7, not without it"},
		{func(m *Manifest) { m.Total++ }, "a total of images 20, not 21"},
		{func(m *Manifest) { m.ChunkSize++ }, "--chunk 4, not 5"},
		{func(m *Manifest) { m.Shard = "1/2" }, "no --shard, not --shard 1/2"},
		{func(m *Manifest) { m.Config.Depth = 12 }, "--config/--heads depth 0, not 12"},
		{func(m *Manifest) { m.Config.Heads = 3 }, "--config/--heads heads 0, not 3"},
		{func(m *Manifest) { m.DatasetRoot = "/mnt" }, "--root /data, not /mnt"},
		{func(m *Manifest) { m.ImagesSHA256 = "ffff" }, "the images under --root /data (the dataset changed since): list sha256 1234, not ffff"},
		{func(m *Manifest) { m.ImagesSHA256 = "" }, "the images under --root /data (the dataset changed since): list sha256 1234, not without it"},
		{func(m *Manifest) { m.ClassesSHA256 = "ffff" }, "no --classes of sha256, not --classes of sha256 ffff"},
		{func(m *Manifest) { m.HeadSHA256 = "cccc" }, "no --head of sha256, not --head of sha256 cccc"},
		{func(m *Manifest) { m.LensSHA256 = "dddd" }, "no --lens of sha256, not --lens of sha256 dddd"},
		{func(m *Manifest) { m.Selection = "partition=validation limit=9 classes-only=" }, "--limit 0, not 9"},
		{func(m *Manifest) { m.Selection = "all" }, "the selection partition=validation limit=0 classes-only=, not all"},
		{func(m *Manifest) { m.ModelSHA256 = "bbbb"; m.Preset = "x" }, "--model of sha256 aaaa, not bbbb; with --preset vit_b16, not x"},
	} {
		m := testManifest()
		m.Params = map[string]string{"sites": "resid,attn,mlp", "topk": "5"}
		tc.change(&m)
		err := testManifest().SameRun(m)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("SameRun: %v, want %q", err, tc.want)
		}
	}
	// A folder of a vitlens that recorded neither root nor image list.
	old := testManifest()
	old.ImagesSHA256, old.Version = "", "v0.1"
	if err := old.SameRun(testManifest()); err == nil || err.Error() != "was made with vitlens v0.1, which did not record the dataset's image list" {
		t.Errorf("older folder: %v", err)
	}
}

func TestCreateRefuses(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, testManifest(), Parquet)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	m := testManifest()
	m.ModelSHA256 = "bbbb"
	_, err = Create(dir, m, Parquet)
	if err == nil || !strings.Contains(err.Error(), dir+" was made with --model of sha256 aaaa, not bbbb: use a new --out") {
		t.Errorf("different model: %v", err)
	}
	if strings.Contains(fmt.Sprint(err), "--force") {
		t.Errorf("the message names a flag that does not exist: %v", err)
	}
	if _, err := Create(dir, testManifest(), CSV); err == nil || !strings.Contains(err.Error(), "--format parquet, not csv") {
		t.Errorf("different format: %v", err)
	}
	if _, err := Create(dir, testManifest(), "xlsx"); err == nil {
		t.Error("unknown format: no error")
	}
	busy := t.TempDir()
	os.WriteFile(filepath.Join(busy, "notes.txt"), []byte("mine"), 0o644)
	if _, err := Create(busy, testManifest(), Parquet); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(busy, "notes.txt")); err != nil {
		t.Error("Create touched a foreign folder")
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, testManifest(), Parquet)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, r, 0)
	type wrongRow struct {
		Image int32 `parquet:"image"`
		Score int32 `parquet:"score"`
	}
	err = ReadRows(dir, "ranks", func(wrongRow) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "no column score") {
		t.Errorf("wrong row type: %v", err)
	}
	if err := ReadRows(dir, "nosuch", func(RankRow) error { return nil }); err == nil || !strings.Contains(err.Error(), "no table") {
		t.Errorf("missing table: %v", err)
	}
	stop := errors.New("stop")
	n := 0
	if err := ReadRows(dir, "ranks", func(RankRow) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("callback error: %v after %d rows", err, n)
	}
	bad := partPath(dir, "ranks", 0, Parquet)
	os.WriteFile(bad, []byte("not parquet"), 0o644)
	if err := ReadRows(dir, "ranks", func(RankRow) error { return nil }); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("corrupt part: %v", err)
	}
	if err := WriteChunk(r, "ranks", 1, []int{1}); err == nil {
		t.Error("non-struct rows: no error")
	}
	if err := WriteChunk(r, "../x", 1, rankRows(1, 1)); err == nil {
		t.Error("table name with a path: no error")
	}
}

// shard writes the given chunks as one shard of the test run.
func shard(t *testing.T, dir, name string, f Format, chunks ...int) {
	t.Helper()
	m := testManifest()
	m.Shard = name
	m.Total = len(chunks) * testChunkSize
	r, err := Create(dir, m, f)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	writeChunks(t, r, chunks...)
}

func TestMerge(t *testing.T) {
	for _, f := range []Format{Parquet, CSV} {
		t.Run(string(f), func(t *testing.T) {
			tmp := t.TempDir()
			single := filepath.Join(tmp, "single")
			r, err := Create(single, testManifest(), f)
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, r, 0, 1, 2, 3, 4)
			if err := r.Finish(); err != nil {
				t.Fatal(err)
			}
			a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
			shard(t, a, "1/2", f, 0, 2, 4)
			shard(t, b, "2/2", f, 1, 3)
			out := filepath.Join(tmp, "merged")
			for range 2 { // a rerun of a finished merge is harmless
				if err := Merge(out, []string{a, b}); err != nil {
					t.Fatal(err)
				}
			}
			checkRows(t, "ranks", readAll[RankRow](t, out, "ranks"), readAll[RankRow](t, single, "ranks"))
			checkRows(t, "summary", readAll[SummaryRow](t, out, "summary"), readAll[SummaryRow](t, single, "summary"))
			m, err := ReadManifest(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.SameRun(r.Manifest()); err != nil || len(m.MergedFrom) != 2 {
				t.Errorf("merged manifest: %v, merged from %v", err, m.MergedFrom)
			}
		})
	}
}

func TestMergeErrors(t *testing.T) {
	tmp := t.TempDir()
	dir := func(name string) string { return filepath.Join(tmp, name) }
	shard(t, dir("a"), "1/2", Parquet, 0, 2, 4)
	shard(t, dir("b-short"), "2/2", Parquet, 1)    // chunk 3 never written
	shard(t, dir("b-dup"), "2/2", Parquet, 1, 2)   // chunk 2 is also in a
	shard(t, dir("b-csv"), "2/2", CSV, 1, 3)       // another format
	shard(t, dir("b-extra"), "2/2", Parquet, 1, 3) // fine with a, but not twice
	for _, tc := range []struct {
		shards []string
		want   string
	}{
		{[]string{"a", "b-short"}, "no shard has chunk 3"},
		{[]string{"a", "b-dup"}, "chunk 2 is in both"},
		{[]string{"a", "b-csv"}, "--format parquet, not csv"},
		{[]string{"a", "b-extra", "b-extra"}, "chunk 1 is in both"},
		{[]string{"a", "nosuch"}, "nosuch"},
		{nil, "no shards"},
	} {
		var shards []string
		for _, s := range tc.shards {
			shards = append(shards, dir(s))
		}
		err := Merge(dir("out-"+strings.Join(tc.shards, "-")), shards)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Merge(%v): %v, want %q", tc.shards, err, tc.want)
		}
	}
	if err := Merge(dir("a"), []string{dir("a")}); err == nil {
		t.Error("merging a shard into itself: no error")
	}
}

// Finishing many chunks must stream: peak heap during Finish stays far below
// the size of the rows (200 chunks x 10k rows = 2M rows, ~100 MB as structs).
func TestFinishStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2M rows")
	}
	const chunks, perChunk = 200, 10_000
	dir := t.TempDir()
	m := testManifest()
	m.Total, m.ChunkSize = chunks*perChunk, perChunk
	r, err := Create(dir, m, Parquet)
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]RankRow, perChunk)
	for c := range chunks {
		for i := range rows {
			rows[i] = RankRow{Image: int32(c*perChunk+i) / 500, Block: int32(i % 12), Site: sites[i%3],
				Token: int32(i % 197), Rank: int32(i * 7919 % 1000), Top1: int32(i % 1000), TargetLogit: float32(i) / 7}
		}
		if err := WriteChunk(r, "ranks", c, rows); err != nil {
			t.Fatal(err)
		}
		if err := r.CommitChunk(c); err != nil {
			t.Fatal(err)
		}
	}
	rows = nil

	peak := func(work func() error) (base, top uint64) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base = ms.HeapInuse
		var max atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > max.Load() {
					max.Store(ms.HeapInuse)
				}
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
		})
		if err := work(); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		return base, max.Load()
	}
	const mib = 1 << 20
	start := time.Now()
	base, top := peak(r.Finish)
	t.Logf("Finish of %d rows: %v, heap in use %d MiB before, peak %d MiB", chunks*perChunk, time.Since(start).Round(time.Millisecond), base/mib, top/mib)
	if top-base > 48*mib {
		t.Errorf("Finish grew the heap by %d MiB; it should stream", (top-base)/mib)
	}
	n := 0
	base, top = peak(func() error {
		return ReadRows(dir, "ranks", func(r RankRow) error { n++; return nil })
	})
	t.Logf("ReadRows: heap in use %d MiB before, peak %d MiB", base/mib, top/mib)
	if n != chunks*perChunk {
		t.Fatalf("read %d rows, want %d", n, chunks*perChunk)
	}
	if top-base > 48*mib {
		t.Errorf("ReadRows grew the heap by %d MiB; it should stream", (top-base)/mib)
	}
	if st, err := os.Stat(filepath.Join(dir, "ranks.parquet")); err == nil {
		t.Logf("ranks.parquet: %.1f bytes/row", float64(st.Size())/float64(n))
	}
}

func TestFileSHA256(t *testing.T) {
	p := filepath.Join(t.TempDir(), "abc")
	os.WriteFile(p, []byte("abc"), 0o644)
	got, err := FileSHA256(p)
	if want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; err != nil || got != want {
		t.Errorf("FileSHA256 = %s, %v; want %s", got, err, want)
	}
	if _, err := FileSHA256(p + "-missing"); err == nil {
		t.Error("missing file: no error")
	}
}
