package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// dla on the models it once refused: distilled DeiT (both heads, each
// token's σ printed) and a CLIP tower through a head file that
// L2-normalises (‖e‖ printed), post-norm gap; dla.csv sums to the printed
// logit every time.
func TestDLAOnDistilledNormalisedAndPostNorm(t *testing.T) {
	ref := filepath.Join("..", "testdata", "reference")
	img := filepath.Join("..", "public", "samples", "fmnist-test-0-ankle-boot.png")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"deit_dist", []string{"--model", filepath.Join(ref, "deit_dist", "timm.safetensors"), "--heads", "2"}, "at the distillation token"},
		{"clip_normalize", []string{"--model", filepath.Join(ref, "clip", "timm.safetensors"), "--heads", "2",
			"--head", filepath.Join(ref, "clip", "head_normalize.safetensors")}, "the head file's ‖e‖ = "},
		{"gap", []string{"--model", filepath.Join(ref, "gap", "timm.safetensors"), "--heads", "2"}, "each post-norm block's norm1 per token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append(append([]string{"dla", "--preset", "google", "--out", dir}, c.args...), img)
			out, stderr, code := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, out)
			}
			var sum float64
			for _, r := range readCSV(t, filepath.Join(dir, "dla.csv"))[1:] {
				v, err := strconv.ParseFloat(r[7], 64)
				if err != nil {
					t.Fatal(err)
				}
				sum += v
			}
			if !strings.Contains(out, "logit "+strconv.FormatFloat(sum, 'f', 4, 64)+" = parts") {
				t.Errorf("dla.csv sums to %.4f, the printed logit differs:\n%s", sum, out)
			}
		})
	}
}
