package results

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFileChunk writes and commits chunk c with a table part and a file
// whose content names the chunk.
func writeFileChunk(t *testing.T, r *Run, c int, commit bool) {
	t.Helper()
	if err := WriteChunk(r, "summary", c, summaryRows(c)); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteChunkFile("acts", ".bin", c, 3, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "chunk %d tensors", c)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if commit {
		if err := r.CommitChunk(c); err != nil {
			t.Fatal(err)
		}
	}
}

// Chunk files resume like table parts: an uncommitted one is removed, a
// damaged one makes its chunk be redone, and Merge links them.
func TestChunkFilesResumeAndMerge(t *testing.T) {
	dir := t.TempDir()
	r := mustCreate(t, dir, testManifest(), CSV)
	writeFileChunk(t, r, 0, true)
	writeFileChunk(t, r, 1, true)
	writeFileChunk(t, r, 2, false) // the crash: written, never committed
	r.Close()
	if err := os.WriteFile(ChunkFilePath(dir, "acts", 1, ".bin"), []byte("chunk 1 tensorz"), 0o644); err != nil {
		t.Fatal(err)
	}
	again := mustCreate(t, dir, testManifest(), CSV)
	if !again.ChunkDone(0) || again.ChunkDone(1) || again.ChunkDone(2) {
		t.Fatalf("after resume: chunks done %v %v %v, want only 0", again.ChunkDone(0), again.ChunkDone(1), again.ChunkDone(2))
	}
	if rep := strings.Join(again.Repaired(), "; "); !strings.Contains(rep, "files/acts/chunk-000001.bin does not have the checksum") {
		t.Errorf("repaired: %q", rep)
	}
	for _, c := range []int{1, 2} {
		if _, err := os.Stat(ChunkFilePath(dir, "acts", c, ".bin")); !os.IsNotExist(err) {
			t.Errorf("chunk %d's file survived the resume: %v", c, err)
		}
	}
	again.Close()

	// Two shards merge with their files.
	tmp := t.TempDir()
	for i, chunks := range [][]int{{0, 2, 4}, {1, 3}} {
		m := testManifest()
		m.Shard = fmt.Sprintf("%d/2", i)
		m.Total = len(chunks) * testChunkSize
		s := mustCreate(t, filepath.Join(tmp, fmt.Sprint(i)), m, CSV)
		for _, c := range chunks {
			writeFileChunk(t, s, c, true)
		}
		s.Close()
	}
	out := filepath.Join(tmp, "merged")
	if err := Merge(out, []string{filepath.Join(tmp, "0"), filepath.Join(tmp, "1")}); err != nil {
		t.Fatal(err)
	}
	for c := 0; c < 5; c++ {
		got, err := os.ReadFile(ChunkFilePath(out, "acts", c, ".bin"))
		if err != nil || !bytes.Equal(got, []byte(fmt.Sprintf("chunk %d tensors", c))) {
			t.Errorf("merged chunk %d: %q, %v", c, got, err)
		}
	}
	if err := Verify(out); err != nil {
		t.Error(err)
	}
}
