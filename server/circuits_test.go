package main

import (
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/results"
	"vitlens/vit/vittest"
)

func bundleDemo() (*bundle.Bundle, error) { return bundle.Demo(bundle.Options{}) }

const (
	bootPNG     = "../public/samples/fmnist-test-0-ankle-boot.png"
	pulloverPNG = "../public/samples/fmnist-test-1-pullover.png"
)

func TestHooksListsEveryHookWithShape(t *testing.T) {
	out, stderr, code := runCLI(t, "hooks")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1+2+12*6 {
		t.Fatalf("%d lines for the 6-block demo model:\n%s", len(lines), out)
	}
	for _, want := range []string{"blocks.5.attn.hook_pattern       [4, 17, 17]    blocks.5.attn_probs", "blocks.0.mlp.hook_post           [17, 256]", "hook_embed                       [17, 64]"} {
		if !strings.Contains(out, want) {
			t.Errorf("hooks lacks %q:\n%s", want, out)
		}
	}
}

// dla's table sums to the model's logit (the package test checks every
// sample; this checks the command's CSV says the same).
func TestDLAWritesTableAndGrid(t *testing.T) {
	dir := t.TempDir()
	out, stderr, code := runCLI(t, "dla", "--out", dir, bootPNG)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "class 9 (Ankle boot)") {
		t.Errorf("dla output:\n%s", out)
	}
	rows := readCSV(t, filepath.Join(dir, "dla.csv"))
	var sum float64
	for _, r := range rows[1:] {
		v, err := strconv.ParseFloat(r[7], 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	if len(rows) != 1+2+6*(4+2)+1 {
		t.Errorf("%d rows in dla.csv", len(rows))
	}
	if !strings.Contains(out, "logit "+strconv.FormatFloat(sum, 'f', 4, 64)) {
		t.Errorf("dla.csv sums to %.4f, the printed logit differs:\n%s", sum, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "dla-heads.png")); err != nil {
		t.Error(err)
	}
	// report picks the folder up by its dla.json: the grid and its tables.
	html := filepath.Join(t.TempDir(), "report.html")
	if _, stderr, code := runCLI(t, "report", "--out", html, dir); code != 0 {
		t.Fatalf("report: exit %d: %s", code, stderr)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), "Direct logit attribution") || !strings.Contains(string(page), "mean over 1 images") {
		t.Errorf("the report has no DLA section")
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestPatchHeadsWithAttribution(t *testing.T) {
	dir := t.TempDir()
	out, stderr, code := runCLI(t, "patch", "--clean", bootPNG, "--corrupt", pulloverPNG, "--hooks", "blocks.*.attn.hook_z",
		"--per", "head", "--attribution", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "metric logit_diff:9,2") || !strings.Contains(out, "attribution patching vs exact: Pearson r") {
		t.Errorf("patch output:\n%s", out)
	}
	rows := readCSV(t, filepath.Join(dir, "patch.csv"))
	if len(rows) != 1+6*4 || rows[0][7] != "attribution" {
		t.Errorf("patch.csv: %d rows, header %v", len(rows), rows[0])
	}
	if _, err := os.Stat(filepath.Join(dir, "patch-attn_hook_z.png")); err != nil {
		t.Error(err)
	}
}

func TestPatchRefusals(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--hooks", "blocks.*.hook_resid_pre", "--per", "head"}, "--per head needs hooks with heads"},
		{[]string{"--hooks", "blocks.9.hook_z"}, "-hooks: hook \"blocks.9.hook_z\": block 9 out of range 0..5"},
		{[]string{"--mode", "mean"}, "--mode mean needs --reference"},
		{[]string{"--metric", "rank:3", "--attribution"}, "differentiable metric"},
		{[]string{"--metric", "logit_diff:3"}, "want logit_diff:A,B"},
		{[]string{"--per", "pixel"}, "-per must be layer, token, head or position"},
		{[]string{"--limit", "5", "--random", "1"}, "--limit, --random: only a --pairs batch reads these"},
		{[]string{"--backend", "tpu"}, "-backend: unknown backend \"tpu\""},
	} {
		args := append([]string{"patch", "--clean", bootPNG, "--corrupt", pulloverPNG, "--out", t.TempDir()}, tc.args...)
		_, stderr, code := runCLI(t, args...)
		if code != 1 || !strings.Contains(stderr, tc.says) {
			t.Errorf("%v: exit %d, %q; want one saying %q", tc.args, code, stderr, tc.says)
		}
	}
}

// patch --backend gpu writes the table --backend cpu does, within the GPU
// patching tolerance (gpu.TestPatchingMatchesCPUAndTorch: 2e-4·max(1, |cpu|)
// per metric), here with two hooks' sites mixed in the GPU's batches and the
// attention pattern among them; a hook the GPU does not patch is refused by
// name, and auto falls back to the CPU saying so.
func TestPatchGPUMatchesCPU(t *testing.T) {
	common := []string{"patch", "--clean", bootPNG, "--corrupt", pulloverPNG, "--hooks", "blocks.*.attn.hook_pattern,blocks.2.hook_mlp_out", "--per", "token"}
	tables := map[string][][]string{}
	for _, be := range []string{"cpu", "gpu"} {
		dir := t.TempDir()
		out, stderr, code := runCLI(t, append(common, "--backend", be, "--out", dir)...)
		if code != 0 {
			if be == "gpu" && strings.Contains(stderr, "adapter") {
				t.Skipf("no WebGPU adapter: %s", stderr)
			}
			t.Fatalf("--backend %s: exit %d: %s", be, code, stderr)
		}
		if on := map[string]string{"cpu": ") on cpu\n", "gpu": ") on webgpu: "}[be]; !strings.Contains(out, on) {
			t.Errorf("--backend %s: the summary does not say %q:\n%s", be, on, out)
		}
		tables[be] = readCSV(t, filepath.Join(dir, "patch.csv"))
	}
	cpu, gpu := tables["cpu"], tables["gpu"]
	if len(cpu) != 1+6*17+17 || len(gpu) != len(cpu) {
		t.Fatalf("patch.csv: %d rows on the cpu, %d on the gpu", len(cpu), len(gpu))
	}
	for i := 1; i < len(cpu); i++ {
		if strings.Join(cpu[i][:4], ",") != strings.Join(gpu[i][:4], ",") {
			t.Fatalf("row %d: cpu %v, gpu %v", i, cpu[i], gpu[i])
		}
		for _, col := range []int{4, 5} { // metric, effect
			c, err1 := strconv.ParseFloat(cpu[i][col], 64)
			g, err2 := strconv.ParseFloat(gpu[i][col], 64)
			if err1 != nil || err2 != nil || math.Abs(g-c) > 2e-4*math.Max(1, math.Abs(c)) {
				t.Errorf("row %d %s: cpu %s, gpu %s", i, cpu[0][col], cpu[i][col], gpu[i][col])
			}
		}
	}
	embed := append(common[:5:5], "--hooks", "hook_pos_embed", "--per", "token", "--out", t.TempDir())
	if _, stderr, code := runCLI(t, append(embed, "--backend", "gpu")...); code != 1 || !strings.Contains(stderr, "hook_pos_embed is not supported on the GPU backend") {
		t.Errorf("--backend gpu --hooks hook_pos_embed: exit %d, %q", code, stderr)
	}
	if out, stderr, code := runCLI(t, append(embed, "--backend", "auto")...); code != 0 || !strings.Contains(out, ") on cpu\n") {
		t.Errorf("--backend auto --hooks hook_pos_embed: exit %d, %q, %s (want the CPU's patches)", code, stderr, out)
	}
}

// cache writes, per chunk, the hooks' values as the forward computes them,
// [images, tokens, ...] under their hook names, and resumes.
func TestCacheWritesHookTensorsAndResumes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	args := []string{"cache", "--hooks", "blocks.1.attn.hook_z,blocks.5.hs", "--tokens", "cls", "--chunk", "1", "--format", "csv", "--out", dir, "--quiet", bootPNG, pulloverPNG}
	out, stderr, code := runCLI(t, args...)
	if code != 0 || !strings.Contains(out, "cache: 2 images (0 skipped, 0 chunks resumed)") {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	b, err := bundleDemo()
	if err != nil {
		t.Fatal(err)
	}
	for k, img := range []string{bootPNG, pulloverPNG} {
		g, err := vittest.OpenGolden(results.ChunkFilePath(dir, "activations", k, ".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		x, err := loadImage(b, img)
		if err != nil {
			t.Fatal(err)
		}
		hooks, _ := b.Model.Config.MatchHooks("blocks.1.attn.hook_z,blocks.5.hook_resid_post")
		fns, cache := vit.CacheHooks(hooks)
		if _, err := b.Model.Forward(x, vit.Options{Hooks: fns}); err != nil {
			t.Fatal(err)
		}
		for _, h := range hooks {
			got := g.MustTensor(t, h.Name())
			want := cache[h]
			row := want.Numel() / want.Shape[0]
			if got.Shape[0] != 1 || got.Shape[1] != 1 || len(got.Data) != row {
				t.Fatalf("%s: shape %v", h.Name(), got.Shape)
			}
			for i, v := range got.Data {
				if v != want.Data[i] { // [CLS] is row 0
					t.Fatalf("%s chunk %d [%d]: %g, forward %g", h.Name(), k, i, v, want.Data[i])
				}
			}
		}
		if ids := g.Meta["ids"]; !strings.Contains(ids, filepath.Base(img)) {
			t.Errorf("chunk %d ids %s", k, ids)
		}
	}
	if rows := readCSV(t, filepath.Join(dir, "images.csv")); len(rows) != 3 {
		t.Errorf("images table: %v", rows)
	}
	out, stderr, code = runCLI(t, args...)
	if code != 0 || !strings.Contains(out, "0 images (0 skipped, 2 chunks resumed)") {
		t.Fatalf("resume: exit %d: %s %s", code, out, stderr)
	}
}

// --mode mean from a cache run equals the mean of the same images given
// with --reference (float32 cache: the same numbers, summed in another
// order).
func TestPatchMeanFromCacheRun(t *testing.T) {
	tmp := t.TempDir()
	run := filepath.Join(tmp, "cache")
	if _, stderr, code := runCLI(t, "cache", "--hooks", "blocks.*.attn.hook_z", "--tokens", "all", "--chunk", "1", "--out", run, "--quiet", bootPNG, pulloverPNG); code != 0 {
		t.Fatal(stderr)
	}
	common := []string{"patch", "--clean", bootPNG, "--corrupt", pulloverPNG, "--hooks", "blocks.*.attn.hook_z", "--per", "head", "--mode", "mean"}
	fromCache, fromFiles := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	if _, stderr, code := runCLI(t, append(common, "--mean-from", run, "--out", fromCache)...); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := runCLI(t, append(common, "--reference", bootPNG+","+pulloverPNG, "--out", fromFiles)...); code != 0 {
		t.Fatal(stderr)
	}
	a, b := readCSV(t, filepath.Join(fromCache, "patch.csv")), readCSV(t, filepath.Join(fromFiles, "patch.csv"))
	if len(a) != 1+6*4 || len(a) != len(b) {
		t.Fatalf("%d and %d rows", len(a), len(b))
	}
	for i := 1; i < len(a); i++ {
		x, _ := strconv.ParseFloat(a[i][4], 64)
		y, _ := strconv.ParseFloat(b[i][4], 64)
		if d := x - y; d > 1e-5 || d < -1e-5 {
			t.Errorf("row %d: %g from the cache run, %g from the files", i, x, y)
		}
	}
	_, stderr, code := runCLI(t, append(common, "--hooks", "blocks.0.hook_resid_pre", "--per", "token", "--mean-from", run, "--out", filepath.Join(tmp, "c"))...)
	if code != 1 || !strings.Contains(stderr, "has no blocks.0.hook_resid_pre") {
		t.Errorf("a hook the cache lacks: exit %d, %s", code, stderr)
	}
}

// A pairs file runs as a batch: every pair's patches equal the single-pair
// command's, a pair both of whose images get the same prediction is skipped
// with its reason, and a rerun resumes.
func TestPatchPairsBatch(t *testing.T) {
	tmp := t.TempDir()
	samples, err := filepath.Abs("../public/samples")
	if err != nil {
		t.Fatal(err)
	}
	pairs := filepath.Join(tmp, "pairs.csv")
	body := "clean,corrupt\n" + samples + "/fmnist-test-0-ankle-boot.png,fmnist-test-1-pullover.png\n" +
		samples + "/fmnist-test-0-ankle-boot.png," + samples + "/fmnist-test-0-ankle-boot.png\n"
	if err := os.WriteFile(pairs, []byte(strings.ReplaceAll(body, ",fmnist", ","+samples+"/fmnist")), 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(tmp, "run")
	args := []string{"patch", "--pairs", pairs, "--hooks", "blocks.*.attn.hook_z", "--per", "head", "--attribution", "--format", "csv", "--chunk", "1", "--out", run, "--quiet"}
	out, stderr, code := runCLI(t, args...)
	if code != 0 || !strings.Contains(out, "1 pairs (1 skipped, 0 chunks resumed)") {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	skipped := readCSV(t, filepath.Join(run, "skipped.csv"))
	if len(skipped) != 2 || !strings.Contains(skipped[1][2], "both images are predicted 9") {
		t.Errorf("skipped: %v", skipped)
	}
	single := filepath.Join(tmp, "single")
	if _, stderr, code := runCLI(t, "patch", "--clean", bootPNG, "--corrupt", pulloverPNG, "--hooks", "blocks.*.attn.hook_z", "--per", "head", "--attribution", "--out", single); code != 0 {
		t.Fatal(stderr)
	}
	batch, one := readCSV(t, filepath.Join(run, "patches.csv")), readCSV(t, filepath.Join(single, "patch.csv"))
	if len(batch) != len(one) {
		t.Fatalf("%d batch rows, %d single", len(batch), len(one))
	}
	num := func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
	for i := 1; i < len(one); i++ {
		// patch.csv prints 8 significant digits.
		if batch[i][1] != one[i][0] || math.Abs(num(batch[i][5])-num(one[i][4])) > 1e-6*math.Max(1, math.Abs(num(one[i][4]))) ||
			math.Abs(num(batch[i][8])-num(one[i][7])) > 1e-6*math.Max(1, math.Abs(num(one[i][7]))) {
			t.Errorf("row %d: batch %v, single %v", i, batch[i], one[i])
		}
	}
	out, _, code = runCLI(t, args...)
	if code != 0 || !strings.Contains(out, "0 pairs (0 skipped, 2 chunks resumed)") {
		t.Errorf("resume: %s", out)
	}
}
