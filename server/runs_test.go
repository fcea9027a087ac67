package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vitlens/vit/results"
	"vitlens/vit/vittest"
)

// extractArgs runs extract of the demo model over an image folder.
func extractArgs(root, out string, more ...string) []string {
	return append([]string{"extract", "--quiet", "--data", "folder", "--root", root, "--chunk", "2", "--out", out}, more...)
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, stderr)
	}
	return stdout
}

// A run resumed over another dataset root, or over the same root whose
// files changed, is refused with the flag that differs; so is a merge of
// shards made over two roots.
func TestMixedRootsRefused(t *testing.T) {
	// Two sets of one name and size, as in the issue: rA/set and rB/set.
	tmp := t.TempDir()
	rootA, rootB := filepath.Join(tmp, "rA", "set"), filepath.Join(tmp, "rB", "set")
	for i, root := range []string{rootA, rootB} {
		os.MkdirAll(filepath.Dir(root), 0o755)
		if err := os.Rename(vittest.ImageFolder(t, 2, 20, 18, uint64(i+1)), root); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(tmp, "run")
	mustRun(t, extractArgs(rootA, out)...)
	// The kill after chunk 0 of the issue: chunks 1 and 2 never committed.
	for _, c := range []string{"chunk-000001.done", "chunk-000002.done"} {
		if err := os.Remove(filepath.Join(out, "chunks", c)); err != nil {
			t.Fatal(err)
		}
	}
	_, stderr, code := runCLI(t, extractArgs(rootB, out)...)
	if want := fmt.Sprintf("%s was made with --root %s, not %s", out, rootA, rootB); code != 1 || !strings.Contains(stderr, want) || !strings.HasSuffix(stderr, ": use a new --out\n") {
		t.Errorf("resume with another --root: exit %d, %q; want %q", code, stderr, want)
	}
	// Same root, same number of images, one file rewritten.
	img, err := os.ReadFile(filepath.Join(rootA, "class1", "img01.png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootA, "class1", "img01.png"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runCLI(t, extractArgs(rootA, out)...)
	if want := "was made with the images under --root " + rootA + " (the dataset changed since)"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("resume after the files changed: exit %d, %q; want %q", code, stderr, want)
	}
	_, stderr, code = runCLI(t, extractArgs(rootA, out, "--limit", "5")...)
	if want := "--limit 0, not 5"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("resume with another --limit: exit %d, %q; want %q", code, stderr, want)
	}
	_, stderr, code = runCLI(t, extractArgs(rootA, out, "--masks=false")...)
	if want := "--masks true, not without it"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("resume with --masks=false: exit %d, %q; want %q", code, stderr, want)
	}
	if err := os.WriteFile(filepath.Join(rootA, "class1", "img01.png"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	if stdout := mustRun(t, extractArgs(rootA, out)...); !strings.Contains(stdout, "1 chunks resumed") {
		t.Errorf("resume over the same images: %q", stdout)
	}

	s0, s1 := filepath.Join(tmp, "s0"), filepath.Join(tmp, "s1")
	mustRun(t, extractArgs(rootA, s0, "--shard", "0/2")...)
	mustRun(t, extractArgs(rootB, s1, "--shard", "1/2")...)
	_, stderr, code = runCLI(t, "merge", filepath.Join(tmp, "merged"), s0, s1)
	if want := fmt.Sprintf("are not shards of one run: %s was made with --root %s, not %s", s0, rootA, rootB); code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("merge over two roots: exit %d, %q; want %q", code, stderr, want)
	}
	if _, err := os.Stat(filepath.Join(tmp, "merged")); !os.IsNotExist(err) {
		t.Errorf("the refused merge left a folder (%v)", err)
	}
}

// A second run on a folder another run holds is refused, naming the holder.
func TestBusyFolderRefused(t *testing.T) {
	root := vittest.ImageFolder(t, 1, 20, 18, 1)
	out := filepath.Join(t.TempDir(), "run")
	mustRun(t, extractArgs(root, out)...)
	m, err := results.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	holder, err := results.Create(out, m, m.Format) // the first run, still going
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	_, stderr, code := runCLI(t, extractArgs(root, out)...)
	if want := fmt.Sprintf("is in use by another vitlens run (pid %d on host", os.Getpid()); code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("second run: exit %d, %q; want %q", code, stderr, want)
	}
	if err := results.Verify(out); err != nil {
		t.Errorf("the first run's folder: %v", err)
	}
}

// A run the checks refuse (here: more classes than the model has) leaves
// no folder behind, so the corrected run may use the same --out.
func TestRefusedRunLeavesNoFolder(t *testing.T) {
	src := vittest.ImageFolder(t, 1, 20, 18, 1)
	img, err := os.ReadFile(filepath.Join(src, "class0", "img00.png"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for c := range 11 { // the demo model has 10 classes
		dir := filepath.Join(root, fmt.Sprintf("c%02d", c))
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, "a.png"), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "run")
	_, stderr, code := runCLI(t, extractArgs(root, out)...)
	if code != 1 || !strings.Contains(stderr, "has 11 classes, the model only 10") {
		t.Fatalf("11 classes: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the refused run left %s (%v)", out, err)
	}
	_, stderr, code = runCLI(t, "perturb-tokens", "--drop", "sideways", "--data", "folder", "--root", src, "--out", out)
	if code != 1 || !strings.Contains(stderr, "sideways") {
		t.Fatalf("bad --drop: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the refused run left %s (%v)", out, err)
	}
	mustRun(t, extractArgs(src, out)...)
}

// summary refuses a folder with a damaged or missing chunk, naming it; the
// rerun repairs it.
func TestSummaryRefusesDamaged(t *testing.T) {
	root := vittest.ImageFolder(t, 2, 20, 18, 1)
	out := filepath.Join(t.TempDir(), "run")
	mustRun(t, extractArgs(root, out)...)
	mustRun(t, "summary", out)
	if err := os.Truncate(filepath.Join(out, "chunks", "ranks", "chunk-000001.parquet"), 100); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runCLI(t, "summary", out)
	if want := "chunk 1: chunks/ranks/chunk-000001.parquet is 100 bytes"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("summary of a damaged folder: exit %d, %q; want %q", code, stderr, want)
	}
	if stdout := mustRun(t, extractArgs(root, out)...); !strings.Contains(stdout, "2 chunks resumed") {
		t.Errorf("repairing rerun: %q", stdout)
	}
	mustRun(t, "summary", out)
}

// bench times the lens on the sites asked for, and names --sites when
// they are wrong.
func TestBenchSites(t *testing.T) {
	for _, sites := range []string{"hs,nope", "hs,hs"} {
		_, stderr, code := runCLI(t, "bench", "--no-b16", "--reps", "1", "--sites", sites)
		if code != 1 || !strings.Contains(stderr, "--sites") {
			t.Errorf("--sites %s: exit %d, %q", sites, code, stderr)
		}
	}
	stdout, stderr, code := runCLI(t, "bench", "--no-b16", "--reps", "1", "--sites", "hs")
	if code != 0 || !strings.Contains(stdout, "lens: 1 sites (hs)") {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
}

// --gpu-f16 is refused on the CPU backend, naming the flags, before any
// work; on the GPU (lavapipe here) extract runs with f16 weights and the
// results folder records it in the backend's name.
func TestGPUF16Flag(t *testing.T) {
	tmp := t.TempDir()
	root := vittest.ImageFolder(t, 2, 3, 18, 1)
	for _, args := range [][]string{
		extractArgs(root, filepath.Join(tmp, "cpu"), "--backend", "cpu", "--gpu-f16"),
		{"bench", "--backend", "cpu", "--gpu-f16", "--no-b16", "--reps", "1"},
	} {
		_, stderr, code := runCLI(t, args...)
		if code != 1 || !strings.Contains(stderr, "--gpu-f16") || !strings.Contains(stderr, "--backend gpu") {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
	out := filepath.Join(tmp, "gpu")
	_, stderr, code := runCLI(t, extractArgs(root, out, "--backend", "gpu", "--gpu-f16")...)
	if code != 0 {
		if strings.Contains(stderr, "adapter") {
			t.Skipf("no WebGPU adapter: %s", stderr)
		}
		t.Fatalf("exit %d: %s", code, stderr)
	}
	manifest, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(manifest), "webgpu (f16 weights)") {
		t.Errorf("manifest does not record f16 weights: %s", manifest)
	}
}
