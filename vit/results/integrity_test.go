package results

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mustCreate opens dir for m in format f; the Run is closed when the test ends.
func mustCreate(t *testing.T, dir string, m Manifest, f Format) *Run {
	t.Helper()
	r, err := Create(dir, m, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// A second writer of one folder is refused, naming the holder, and leaves
// the first one's output alone; closing the first lets the folder be resumed.
func TestOneWriterPerFolder(t *testing.T) {
	dir := t.TempDir()
	first := mustCreate(t, dir, testManifest(), Parquet)
	writeChunks(t, first, 0)
	// The in-flight write of chunk 1 that the second writer's clean-up used
	// to delete.
	if err := WriteChunk(first, "ranks", 1, rankRows(1, 9)); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	_, err := Create(dir, testManifest(), Parquet)
	want := fmt.Sprintf("results dir %s is in use by another vitlens run (pid %d on host %s)", dir, os.Getpid(), host)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--out") {
		t.Fatalf("second writer: %v, want %q", err, want)
	}
	if err := WriteChunk(first, "summary", 1, summaryRows(1)); err != nil {
		t.Fatal(err)
	}
	if err := first.CommitChunk(1); err != nil {
		t.Fatal(err)
	}
	writeChunks(t, first, 2, 3, 4)
	if err := first.Finish(); err != nil {
		t.Fatal(err)
	}
	checkRows(t, "ranks", readAll[RankRow](t, dir, "ranks"), wantRanks(0, 1, 2, 3, 4))
	first.Close()
	again, err := Create(dir, testManifest(), Parquet)
	if err != nil {
		t.Fatalf("after the first writer closed: %v", err)
	}
	again.Close()
}

// The lock is the operating system's: a writer killed with SIGKILL leaves
// no stale lock behind. The holder is this test binary run as a child.
func TestLockDiesWithItsProcess(t *testing.T) {
	if dir := os.Getenv("VITLENS_TEST_LOCK_HOLDER"); dir != "" {
		if _, err := Create(dir, testManifest(), Parquet); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockDiesWithItsProcess$")
	cmd.Env = append(os.Environ(), "VITLENS_TEST_LOCK_HOLDER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "locked") {
		cmd.Process.Kill()
		t.Fatalf("holder: %q", buf[:n])
	}
	_, err = Create(dir, testManifest(), Parquet)
	if want := fmt.Sprintf("(pid %d on host", cmd.Process.Pid); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("while the child holds it: %v, want %q", err, want)
	}
	cmd.Process.Kill() // SIGKILL
	cmd.Wait()
	r, err := Create(dir, testManifest(), Parquet)
	if err != nil {
		t.Fatalf("after kill -9 of the holder: %v", err)
	}
	r.Close()
}

// A deleted and a truncated part of committed chunks are found on resume,
// named, and their chunks redone; the tables come out as an uninterrupted
// run's. Verify refuses the folder until then.
func TestDamagedChunksAreRedone(t *testing.T) {
	for _, f := range []Format{Parquet, CSV} {
		t.Run(string(f), func(t *testing.T) {
			dir := t.TempDir()
			r := mustCreate(t, dir, testManifest(), f)
			writeChunks(t, r, 0, 1, 2, 3, 4)
			if err := r.Finish(); err != nil {
				t.Fatal(err)
			}
			r.Close()
			if err := Verify(dir); err != nil {
				t.Fatalf("intact folder: %v", err)
			}
			deleted := partPath(dir, "ranks", 1, f)
			if err := os.Remove(deleted); err != nil {
				t.Fatal(err)
			}
			truncated := partPath(dir, "summary", 3, f)
			st, _ := os.Stat(truncated)
			if err := os.Truncate(truncated, st.Size()/2); err != nil {
				t.Fatal(err)
			}
			err := Verify(dir)
			if err == nil || !strings.Contains(err.Error(), "chunk 1: "+rel(dir, deleted)+" is missing") || !strings.Contains(err.Error(), "rerun `vitlens extract`") {
				t.Errorf("Verify of a deleted part: %v", err)
			}

			r = mustCreate(t, dir, testManifest(), f)
			rep := strings.Join(r.Repaired(), "\n")
			if len(r.Repaired()) != 2 || !strings.Contains(rep, "chunk 1: "+rel(dir, deleted)+" is missing") ||
				!strings.Contains(rep, fmt.Sprintf("chunk 3: %s is %d bytes, but %d were committed", rel(dir, truncated), st.Size()/2, st.Size())) {
				t.Errorf("Repaired() = %q", rep)
			}
			for c, want := range []bool{true, false, true, false, true} {
				if r.ChunkDone(c) != want {
					t.Errorf("ChunkDone(%d) = %v, want %v", c, !want, want)
				}
			}
			if _, err := os.Stat(finalPath(dir, "ranks", f)); err == nil {
				t.Error("the finished table survived a damaged chunk")
			}
			if err := Verify(dir); err == nil || !strings.Contains(err.Error(), "chunk 1 was never committed") {
				t.Errorf("Verify while chunks 1 and 3 are redone: %v", err)
			}
			writeChunks(t, r, 1, 3)
			if err := r.Finish(); err != nil {
				t.Fatal(err)
			}
			checkRows(t, "ranks", readAll[RankRow](t, dir, "ranks"), wantRanks(0, 1, 2, 3, 4))
			checkRows(t, "summary", readAll[SummaryRow](t, dir, "summary"), wantSummary(0, 1, 2, 3, 4))
			if err := Verify(dir); err != nil {
				t.Errorf("after the repair: %v", err)
			}
		})
	}
}

// Verify refuses what summary must not read: a run that never finished, a
// damaged finished table, an old marker without checksums, a lone shard.
func TestVerifyRefuses(t *testing.T) {
	make := func(t *testing.T, finish bool, chunks ...int) string {
		dir := t.TempDir()
		r := mustCreate(t, dir, testManifest(), Parquet)
		writeChunks(t, r, chunks...)
		if finish {
			if err := r.Finish(); err != nil {
				t.Fatal(err)
			}
		}
		r.Close()
		return dir
	}
	dir := make(t, false, 0, 1, 3)
	if err := Verify(dir); err == nil || !strings.Contains(err.Error(), "incomplete: chunk 2 was never committed") ||
		!strings.Contains(err.Error(), "rerun `vitlens extract` to finish it") {
		t.Errorf("gap: %v", err)
	}
	dir = make(t, false, 0, 1)
	if err := Verify(dir); err == nil || !strings.Contains(err.Error(), "chunks 0..1 are committed, but the run never reached its end") {
		t.Errorf("unfinished: %v", err)
	}

	dir = make(t, true, 0, 1, 2, 3, 4)
	final := finalPath(dir, "summary", Parquet)
	b, _ := os.ReadFile(final)
	b[len(b)/2] ^= 1
	os.WriteFile(final, b, 0o644)
	if err := Verify(dir); err == nil || !strings.Contains(err.Error(), "table summary.parquet does not have the checksum it was committed with") {
		t.Errorf("damaged finished table: %v", err)
	}
	// Finish notices it too and rebuilds the table.
	r := mustCreate(t, dir, testManifest(), Parquet)
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := Verify(dir); err != nil {
		t.Errorf("after Finish rebuilt the table: %v", err)
	}
	checkRows(t, "summary", readAll[SummaryRow](t, dir, "summary"), wantSummary(0, 1, 2, 3, 4))

	dir = make(t, true, 0, 1, 2, 3, 4)
	os.WriteFile(markerPath(dir, 2), nil, 0o644) // as vitlens wrote markers before checksums
	if err := Verify(dir); err == nil || !strings.Contains(err.Error(), "chunk 2: its marker chunks/chunk-000002.done records no row counts or checksums (an older vitlens wrote it): rerun its command with a new --out") {
		t.Errorf("old marker: %v", err)
	}

	sh := filepath.Join(t.TempDir(), "s")
	shard(t, sh, "0/2", Parquet, 0, 2, 4)
	if err := Verify(sh); err == nil || !strings.Contains(err.Error(), "is shard 0/2 of a run: merge the shards") {
		t.Errorf("a shard: %v", err)
	}
}

// Shards of runs over other images are refused by merge, and so is a shard
// with a damaged chunk.
func TestMergeRefusesMixedAndDamaged(t *testing.T) {
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	shard(t, a, "0/2", Parquet, 0, 2, 4)
	m := testManifest()
	m.Shard, m.Total, m.DatasetRoot = "1/2", 2*testChunkSize, "/other/set"
	r := mustCreate(t, b, m, Parquet)
	writeChunks(t, r, 1, 3)
	r.Close()
	err := Merge(filepath.Join(tmp, "out"), []string{a, b})
	if err == nil || !strings.Contains(err.Error(), "are not shards of one run: "+a+" was made with --root /data, not /other/set") {
		t.Errorf("mixed roots: %v", err)
	}

	c := filepath.Join(tmp, "c")
	shard(t, c, "1/2", Parquet, 1, 3)
	if err := Merge(filepath.Join(tmp, "ok"), []string{a, c}); err != nil {
		t.Fatal(err)
	}
	m = testManifest()
	m.Shard = "1/3"
	m.Total = 2 * testChunkSize
	d := filepath.Join(tmp, "d")
	r = mustCreate(t, d, m, Parquet)
	writeChunks(t, r, 1, 3)
	r.Close()
	if err := Merge(filepath.Join(tmp, "out3"), []string{a, d}); err == nil || !strings.Contains(err.Error(), "--shard i/2, not i/3") {
		t.Errorf("shards of 2 and 3: %v", err)
	}

	os.Truncate(partPath(c, "ranks", 3, Parquet), 10)
	err = Merge(filepath.Join(tmp, "out2"), []string{a, c})
	if err == nil || !strings.Contains(err.Error(), "merge: shard "+c+": chunk 3: chunks/ranks/chunk-000003.parquet is 10 bytes") {
		t.Errorf("damaged shard: %v", err)
	}
}
