package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	// Subcommands report progress on os.Stderr; runMain's own messages go to errb.
	code := runMain(args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestUsageAndUnknownCommand(t *testing.T) {
	if _, _, code := runCLI(t); code != 2 {
		t.Fatalf("no arguments: exit %d, want 2", code)
	}
	_, stderr, code := runCLI(t, "frobnicate")
	if code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit %d, %q", code, stderr)
	}
}

func TestInfoDemo(t *testing.T) {
	out, stderr, code := runCLI(t, "info")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"demo:fmnist-vit", "6, dim 64, heads 4", "311306", "fmnist"} {
		if !strings.Contains(out, want) {
			t.Errorf("info output lacks %q:\n%s", want, out)
		}
	}
}

// info describes the newer backbones: a CLIP tower read through --head
// (its activation from config.json, class names from the head file), a
// model with registers at another image size; a CLIP tower whose
// activation nothing says is refused.
func TestInfoBackbones(t *testing.T) {
	ref := filepath.Join("..", "testdata", "reference")
	dir := t.TempDir()
	resize := filepath.Join(dir, "resize.json")
	if err := os.WriteFile(resize, []byte(`{"image_size": 48}`), 0o644); err != nil {
		t.Fatal(err)
	}
	head := filepath.Join(ref, "clip", "head.safetensors")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--model", filepath.Join(ref, "clip", "timm.safetensors"), "--heads", "2", "--head", head},
			[]string{"after norm_pre", "activation quick_gelu", `activation from ` + filepath.Join(ref, "clip", "config.json") + `: act "quick_gelu"`,
				`classes    5 (names: ` + head + ` metadata "classes")`}},
		{[]string{"--model", filepath.Join(ref, "ls_reg", "timm.safetensors"), "--heads", "2", "--config", resize},
			[]string{"[CLS] + 2 registers + patches", "position embedding resized from 4×4 to 6×6 patches"}},
	} {
		out, stderr, code := runCLI(t, append([]string{"info"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, stderr)
		}
		for _, want := range tc.want {
			if !strings.Contains(out, want) {
				t.Errorf("%v: info output lacks %q:\n%s", tc.args, want, out)
			}
		}
	}
	// The same tower without its config.json: the activation is not guessed.
	data, err := os.ReadFile(filepath.Join(ref, "clip", "timm.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(dir, "clip.safetensors")
	if err := os.WriteFile(bare, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runCLI(t, "info", "--model", bare, "--heads", "2")
	if code == 0 || !strings.Contains(stderr, `say it with "act" in config.json or --config`) {
		t.Errorf("exit %d: %s", code, stderr)
	}
	// timm's config.json names the architecture and the weights' tag: the
	// activation follows from them, and info says by which rule.
	timmCfg := filepath.Join(dir, "timm.json")
	if err := os.WriteFile(timmCfg, []byte(`{"architecture": "vit_base_patch16_clip_224", "pretrained_cfg": {"tag": "openai"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runCLI(t, "info", "--model", bare, "--heads", "2", "--config", timmCfg)
	if want := "timm architecture vit_base_patch16_clip_224.openai (OpenAI's and MetaCLIP's CLIP weights were trained with QuickGELU)"; code != 0 ||
		!strings.Contains(out, "activation quick_gelu") || !strings.Contains(out, want) {
		t.Errorf("exit %d, want %q in:\n%s%s", code, want, out, stderr)
	}
}

// predict --json follows the documented contract and agrees with the labels
// of the sample images the demo model gets right.
func TestPredictJSON(t *testing.T) {
	img := filepath.Join("..", "public", "samples", "fmnist-test-0-ankle-boot.png")
	out, stderr, code := runCLI(t, "predict", "--json", img)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got []struct {
		Image string `json:"image"`
		Top   []struct {
			Class int     `json:"class"`
			Logit float64 `json:"logit"`
		} `json:"top"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(got) != 1 || got[0].Image != img || len(got[0].Top) != 5 || got[0].Top[0].Class != 9 {
		t.Fatalf("prediction %+v", got)
	}
	for i := 1; i < 5; i++ {
		if got[0].Top[i].Logit > got[0].Top[i-1].Logit {
			t.Fatalf("top-5 not sorted: %+v", got[0].Top)
		}
	}
}

func TestBadInputsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "weights.safetensors")
	if err := os.WriteFile(junk, []byte("not a checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}
	notImage := filepath.Join(dir, "notes.png")
	if err := os.WriteFile(notImage, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "my-config.json")
	if err := os.WriteFile(cfg, []byte(`{"heads": 0}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"info", junk}, "weights.safetensors"},
		{[]string{"predict", "--config", cfg, notImage}, cfg + ": heads 0: must be at least 1"},
		{[]string{"predict", "--preset", "nope", notImage}, `--preset: unknown preprocessing preset "nope"`},
		{[]string{"predict", notImage}, "notes.png"},
		{[]string{"predict", filepath.Join(dir, "missing.png")}, "missing.png"},
		{[]string{"extract", "--data", "folder", "--root", filepath.Join(dir, "nowhere"), "--out", filepath.Join(dir, "r")}, "nowhere"},
		{[]string{"perturb-attn", "--mode", "sideways"}, "sideways"},
		{[]string{"summary", dir}, "manifest"},
	} {
		_, stderr, code := runCLI(t, c.args...)
		if code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q should name %q", c.args, code, stderr, c.want)
		}
	}
}

// extract → summary on a few Fashion-MNIST images, in CSV, then resumed.
func TestExtractSummaryCSV(t *testing.T) {
	if _, err := os.Stat("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"); err != nil {
		t.Skip("Fashion-MNIST (Debian dataset-fashion-mnist) not installed; make test installs it")
	}
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"extract", "--quiet", "--limit", "40", "--chunk", "16", "--format", "csv", "--out", out}
	if _, stderr, code := runCLI(t, args...); code != 0 {
		t.Fatalf("extract: exit %d: %s", code, stderr)
	}
	head, err := os.ReadFile(filepath.Join(out, "ranks.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(head), "image,label,block,site,token,patch_label,rank,top1,top2,top3,top4,top5,target_logit,entropy,kl_last\n") {
		t.Fatalf("ranks.csv header: %q", strings.SplitN(string(head), "\n", 2)[0])
	}
	stdout, stderr, code := runCLI(t, args...)
	if code != 0 || !strings.Contains(stdout, "3 chunks resumed") {
		t.Fatalf("rerun should resume every chunk: exit %d, %q %q", code, stdout, stderr)
	}
	stdout, stderr, code = runCLI(t, "summary", out)
	if code != 0 || !strings.Contains(stdout, "images 40") {
		t.Fatalf("summary: exit %d, %q %q", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "summary.json")); err != nil {
		t.Fatal(err)
	}
}

// Every command prints its usage and exits 0 for -h, --help and
// `vitlens help CMD`; a bad flag still exits 2.
func TestHelpExitsZero(t *testing.T) {
	if len(commands) < 10 {
		t.Fatalf("only %d commands registered", len(commands))
	}
	for name := range commands {
		for _, args := range [][]string{{name, "-h"}, {name, "--help"}, {"help", name}} {
			var code int
			stderr := captureStderr(t, func() { _, _, code = runCLI(t, args...) })
			if code != 0 || !strings.Contains(stderr, "usage: vitlens "+name) {
				t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
			}
		}
		var code int
		captureStderr(t, func() { _, _, code = runCLI(t, name, "--no-such-flag") })
		if code != 2 {
			t.Errorf("%s --no-such-flag: exit %d, want 2", name, code)
		}
	}
}

// captureStderr returns what f writes to os.Stderr (where the flag package
// and the subcommands write).
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = tmp
	defer func() { os.Stderr = saved }()
	f()
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// predict takes --backend like the batch commands: cpu gives the same
// top-5 as before, a bad name is refused naming the flag.
func TestPredictBackend(t *testing.T) {
	img := filepath.Join("..", "public", "samples", "fmnist-test-0-ankle-boot.png")
	out, stderr, code := runCLI(t, "predict", "--backend", "cpu", "--json", img)
	if code != 0 || !strings.Contains(out, `"class": 9`) {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	_, stderr, code = runCLI(t, "predict", "--backend", "tpu", img)
	if code != 1 || !strings.Contains(stderr, "-backend") || !strings.Contains(stderr, "tpu") {
		t.Fatalf("bad backend: exit %d, %q", code, stderr)
	}
	// auto says what it chose (the CPU where no adapter exists).
	var autoOut string
	errText := captureStderr(t, func() { autoOut, _, code = runCLI(t, "predict", "--backend", "auto", "--json", img) })
	if code != 0 || !strings.Contains(errText, "backend auto:") || !strings.Contains(autoOut, `"class": 9`) {
		t.Fatalf("auto: exit %d, %q %q", code, autoOut, errText)
	}
}

// explain runs on the CPU only: --backend gpu is refused with the reason,
// before any work.
func TestExplainRefusesGPU(t *testing.T) {
	img := filepath.Join("..", "public", "samples", "fmnist-test-0-ankle-boot.png")
	_, stderr, code := runCLI(t, "explain", "--backend", "gpu", "--out", filepath.Join(t.TempDir(), "r"), img)
	if code != 1 || !strings.Contains(stderr, "-backend gpu: explain runs on the CPU only") {
		t.Fatalf("exit %d, %q", code, stderr)
	}
}

// A checkpoint that does not say how to preprocess gets google with a
// warning on stderr and "assumed" in the manifest; one without qkv bias gets
// miil, inferred. The explain variants are recorded among the parameters.
func TestPresetSourceInManifest(t *testing.T) {
	img := filepath.Join("..", "public", "samples", "fmnist-test-0-ankle-boot.png")
	ref := filepath.Join("..", "testdata", "reference")
	for _, c := range []struct {
		model, preset, how, warn string
	}{
		{"tiny", "google", "assumed", "warning: preset assumed: google"},
		{"nobias", "miil", "inferred", "preset inferred: miil"},
	} {
		out := filepath.Join(t.TempDir(), "r")
		var code int
		var stdout string
		stderr := captureStderr(t, func() {
			stdout, _, code = runCLI(t, "explain", "--quiet", "--no-chefer", "--objective", "cat_prob", "--grad-input", "key_proj_vals",
				"--model", filepath.Join(ref, c.model, "timm.safetensors"), "--heads", "2", "--out", out, img)
		})
		if code != 0 || !strings.Contains(stderr, c.warn) {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", c.model, code, stdout, stderr)
		}
		b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		var man struct {
			Preset       string                     `json:"preset"`
			PresetSource struct{ How, From string } `json:"preset_source"`
			Params       map[string]string          `json:"params"`
		}
		if err := json.Unmarshal(b, &man); err != nil {
			t.Fatal(err)
		}
		if man.Preset != c.preset || man.PresetSource.How != c.how || man.PresetSource.From == "" {
			t.Errorf("%s: manifest preset %q %+v", c.model, man.Preset, man.PresetSource)
		}
		if man.Params["objective"] != "cat_prob" || man.Params["grad_input"] != "key_proj_vals" {
			t.Errorf("%s: params %v", c.model, man.Params)
		}
	}
	_, stderr, code := runCLI(t, "explain", "--objective", "cat_prob", "--double-softmax", img)
	if code != 1 || !strings.Contains(stderr, "cross entropy only") {
		t.Fatalf("cat_prob with double softmax: exit %d, %q", code, stderr)
	}
}

// An explicit --heads 0 (or a negative count) is a usage error; the flag's
// zero value is reserved for "not given".
func TestHeadsFlagRefusesZero(t *testing.T) {
	for _, v := range []string{"0", "-4", "twelve"} {
		// flag prints its parse errors to os.Stderr; the message is checked below.
		if _, _, code := runCLI(t, "info", "--heads", v); code != 2 {
			t.Errorf("--heads %s: exit %d, want the usage error 2", v, code)
		}
		var h headCount
		if err := h.Set(v); err == nil || !strings.Contains(err.Error(), "--heads 12") {
			t.Errorf("--heads %s: error %v should ask for a positive count", v, err)
		}
	}
	if _, stderr, code := runCLI(t, "info", "--heads", "4"); code != 0 {
		t.Errorf("--heads 4 on the demo model: exit %d, stderr %q", code, stderr)
	}
}

// A head file with "normalize": "true": info says so, and predict ranks the
// head file's classes alike on the CPU and with --backend auto (the GPU
// where an adapter exists: lavapipe here).
func TestNormalizedHeadBackends(t *testing.T) {
	ref := filepath.Join("..", "testdata", "reference", "clip")
	img := filepath.Join("..", "public", "samples", "fmnist-test-0-ankle-boot.png")
	info, stderr, code := runCLI(t, "info", "--model", filepath.Join(ref, "timm.safetensors"), "--heads", "2",
		"--head", filepath.Join(ref, "head_normalize.safetensors"))
	if code != 0 || !strings.Contains(info, "the 12-wide embedding is L2-normalised before it") {
		t.Errorf("info: exit %d: %s%s", code, info, stderr)
	}
	top := map[string][]int{}
	for _, backend := range []string{"cpu", "auto"} {
		out, stderr, code := runCLI(t, "predict", "--json", "--model", filepath.Join(ref, "timm.safetensors"), "--heads", "2",
			"--head", filepath.Join(ref, "head_normalize.safetensors"), "--preset", "google", "--backend", backend, img)
		if code != 0 {
			t.Fatalf("--backend %s: exit %d: %s", backend, code, stderr)
		}
		var preds []struct {
			Top []struct{ Class int } `json:"top"`
		}
		if err := json.Unmarshal([]byte(out), &preds); err != nil || len(preds) != 1 {
			t.Fatalf("--backend %s: %v: %s", backend, err, out)
		}
		for _, c := range preds[0].Top {
			top[backend] = append(top[backend], c.Class)
		}
	}
	if !slices.Equal(top["cpu"], top["auto"]) || len(top["cpu"]) != 5 {
		t.Errorf("top-5 on the CPU %v, with --backend auto %v", top["cpu"], top["auto"])
	}
}
