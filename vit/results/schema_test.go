package results

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// SummaryRowV2 is SummaryRow with a column added, as a newer vitlens writes it.
type SummaryRowV2 struct {
	Image   int32   `parquet:"image"`
	Correct bool    `parquet:"correct"`
	Loss    float64 `parquet:"loss"`
	Name    string  `parquet:"name"`
	Entropy float32 `parquet:"entropy"`
}

// SummaryRowF32 is SummaryRow with loss stored as float32.
type SummaryRowF32 struct {
	Image   int32   `parquet:"image"`
	Correct bool    `parquet:"correct"`
	Loss    float32 `parquet:"loss"`
	Name    string  `parquet:"name"`
}

func schemaV1() []Table {
	return []Table{TableOf[RankRow]("ranks"), TableOf[SummaryRow]("summary")}
}

func withSchema(tables []Table) Manifest {
	m := testManifest()
	m.Schema = tables
	return m
}

// writeRun writes chunks 0 and 1 into a new folder with manifest m.
func writeRun(t *testing.T, dir string, m Manifest, f Format) {
	t.Helper()
	r, err := Create(dir, m, f)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	writeChunks(t, r, 0, 1)
}

func TestTableOf(t *testing.T) {
	got := TableOf[SummaryRow]("summary")
	want := Table{Name: "summary", Columns: []Column{{"image", "int32"}, {"correct", "bool"}, {"loss", "float64"}, {"name", "string"}}}
	if got.Name != want.Name || !slices.Equal(got.Columns, want.Columns) {
		t.Errorf("TableOf: %+v, want %+v", got, want)
	}
}

// A folder is resumed only by a run that writes the same columns; the
// refusal says which columns differ and what to do.
func TestSchemaRefusesResume(t *testing.T) {
	for _, f := range []Format{Parquet, CSV} {
		t.Run(string(f), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			writeRun(t, dir, withSchema(schemaV1()), f)
			for _, tc := range []struct {
				tables []Table
				want   []string
			}{
				{[]Table{TableOf[RankRow]("ranks"), TableOf[SummaryRowV2]("summary")}, []string{"summary: new columns entropy"}},
				{[]Table{TableOf[RankRow]("ranks"), TableOf[SummaryRowF32]("summary")}, []string{"summary: loss float64, now float32"}},
				{[]Table{TableOf[RankRow]("ranks")}, []string{"table summary, which this vitlens does not write"}},
				{append(schemaV1(), TableOf[SummaryRow]("extra")), []string{"this vitlens also writes table extra"}},
			} {
				_, err := Create(dir, withSchema(tc.tables), f)
				if err == nil {
					t.Errorf("%v: resumed", tc.want)
					continue
				}
				t.Log(err)
				for _, w := range append(tc.want, "vitlens test", "new --out") {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("refusal %q lacks %q", err, w)
					}
				}
			}
			r := mustCreate(t, dir, withSchema(schemaV1()), f) // the same columns resume
			if !r.ChunkDone(1) {
				t.Error("resumed run lost chunk 1")
			}
		})
	}
}

// A folder made before manifests recorded a schema stays readable, is
// resumed when its parts have the columns the run writes (and then records
// them), and refused when they do not.
func TestSchemaOfOlderFolders(t *testing.T) {
	for _, f := range []Format{Parquet, CSV} {
		t.Run(string(f), func(t *testing.T) {
			tmp := t.TempDir()
			old, other := filepath.Join(tmp, "old"), filepath.Join(tmp, "other")
			writeRun(t, old, testManifest(), f)
			writeRun(t, other, testManifest(), f)
			checkRows(t, "ranks", readAll[RankRow](t, old, "ranks"), wantRanks(0, 1))
			err := ReadRows(old, "summary", func(SummaryRowV2) error { return nil })
			if err == nil || !strings.Contains(err.Error(), "no column entropy (written by vitlens test") || !strings.Contains(err.Error(), "new --out") {
				t.Errorf("reading newer columns from an older folder: %v", err)
			}

			_, err = Create(other, withSchema([]Table{TableOf[RankRow]("ranks"), TableOf[SummaryRowV2]("summary")}), f)
			if err == nil || !strings.Contains(err.Error(), "summary: new columns entropy") || !strings.Contains(err.Error(), "new --out") {
				t.Errorf("older folder with other columns: %v", err)
			}

			// A table the old folder has no part of yet is no difference.
			r, err := Create(old, withSchema(append(schemaV1(), TableOf[SummaryRow]("later"))), f)
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, r, 2)
			r.Close()
			m, err := ReadManifest(old)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Schema) != 3 {
				t.Errorf("resumed older folder records schema %+v", m.Schema)
			}
			checkRows(t, "ranks", readAll[RankRow](t, old, "ranks"), wantRanks(0, 1, 2))
		})
	}
}

// Rows must match the schema the manifest declares.
func TestWriteChunkChecksSchema(t *testing.T) {
	r := mustCreate(t, filepath.Join(t.TempDir(), "run"), withSchema(schemaV1()), Parquet)
	if err := WriteChunk(r, "other", 0, summaryRows(0)); err == nil || !strings.Contains(err.Error(), "not among the tables") {
		t.Errorf("undeclared table: %v", err)
	}
	if err := WriteChunk(r, "summary", 0, []SummaryRowV2{{}}); err == nil || !strings.Contains(err.Error(), "new columns entropy") {
		t.Errorf("other row type: %v", err)
	}
}

// Shards written with other columns are not merged; an older shard whose
// parts have the same columns merges with a newer one.
func TestMergeChecksSchema(t *testing.T) {
	tmp := t.TempDir()
	dir := func(name string) string { return filepath.Join(tmp, name) }
	for name, tables := range map[string][]Table{"a": schemaV1(), "b-old": nil} {
		m := withSchema(tables)
		m.Shard, m.Total = "1/2", 3*testChunkSize
		if name == "b-old" {
			m.Shard, m.Total = "2/2", 2*testChunkSize
		}
		r := mustCreate(t, dir(name), m, Parquet)
		chunks := []int{0, 2, 4}
		if name == "b-old" {
			chunks = []int{1, 3}
		}
		writeChunks(t, r, chunks...)
	}
	m := withSchema([]Table{TableOf[RankRow]("ranks"), TableOf[SummaryRowV2]("summary")})
	m.Shard, m.Total = "2/2", 2*testChunkSize
	r := mustCreate(t, dir("b-new"), m, Parquet)
	for _, c := range []int{1, 3} {
		if err := WriteChunk(r, "ranks", c, rankRows(c, 2)); err != nil {
			t.Fatal(err)
		}
		if err := WriteChunk(r, "summary", c, []SummaryRowV2{{Image: int32(c), Entropy: 1}}); err != nil {
			t.Fatal(err)
		}
		if err := r.CommitChunk(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := Merge(dir("out-new"), []string{dir("a"), dir("b-new")}); err == nil || !strings.Contains(err.Error(), "summary: new columns entropy") {
		t.Errorf("merging shards of other columns: %v", err)
	}
	if err := Merge(dir("out-old"), []string{dir("a"), dir("b-old")}); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadManifest(dir("out-old")); err != nil || len(got.Schema) != 2 {
		t.Errorf("merged manifest schema %+v, %v", got.Schema, err)
	}
}
