package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
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
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"info", junk}, "weights.safetensors"},
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
	if !strings.HasPrefix(string(head), "image,label,block,site,token,patch_label,rank,top1,top2,top3,top4,top5,target_logit\n") {
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
