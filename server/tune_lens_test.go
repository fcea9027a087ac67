package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vitlens/vit/results"
	"vitlens/vit/tunedlens"
)

// tune-lens writes its two files; extract --lens records the translator
// file's hash, and a folder is never resumed with another lens (or none);
// memories refuses --lens.
func TestTuneLensThenExtractWithLens(t *testing.T) {
	dir := t.TempDir()
	tl := filepath.Join(dir, "tl")
	stdout, stderr, code := runCLI(t, "tune-lens", "--quiet", "--limit", "60", "--fit", "kl", "--epochs", "2", "--batch", "8", "--lr", "3e-3", "--out", tl)
	if code != 0 {
		t.Fatalf("tune-lens: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "kl_plain\tkl_tuned") {
		t.Fatalf("tune-lens printed %q", stdout)
	}
	raw, err := os.ReadFile(filepath.Join(tl, "tuned_lens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep tunedlens.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Train != 30 || rep.HeldOut != 30 || len(rep.Blocks) != 6 || len(rep.BlocksMid) != 6 {
		t.Fatalf("tuned_lens.json: %d train, %d held out, %d+%d blocks", rep.Train, rep.HeldOut, len(rep.Blocks), len(rep.BlocksMid))
	}
	for _, b := range rep.Blocks {
		if math.IsNaN(b.KLTuned) || math.IsNaN(b.IdentTuned) || b.KLPlain < 0 {
			t.Fatalf("block %d: %+v", b.Block, b)
		}
	}
	file := filepath.Join(tl, "translators.safetensors")
	run := filepath.Join(dir, "run")
	if _, stderr, code := runCLI(t, "extract", "--quiet", "--limit", "8", "--lens", file, "--out", run); code != 0 {
		t.Fatalf("extract --lens: exit %d: %s", code, stderr)
	}
	m, err := results.ReadManifest(run)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := results.FileSHA256(file)
	if m.LensSHA256 != want {
		t.Fatalf("manifest lens_sha256 %q, want %q", m.LensSHA256, want)
	}
	if _, stderr, code := runCLI(t, "extract", "--quiet", "--limit", "8", "--out", run); code == 0 || !strings.Contains(stderr, "--lens of sha256") {
		t.Fatalf("resuming a --lens folder without it: exit %d, %q", code, stderr)
	}
	if _, stderr, code := runCLI(t, "memories", "--quiet", "--limit", "8", "--lens", file, "--out", filepath.Join(dir, "mem")); code == 0 || !strings.Contains(stderr, "sublayer") {
		t.Fatalf("memories --lens: exit %d, %q", code, stderr)
	}
}
