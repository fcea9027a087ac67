package dla_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"vitlens/public"
	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/dla"
	"vitlens/vit/preprocess"
	"vitlens/vit/vittest"
)

// checkSum is the promise of the decomposition: the parts plus the head's
// bias term equal the model's own logit (the forward's, in float32), for
// every class, within 1e-4·max(1, |logit|); the parts by token of origin sum
// to their head.
func checkSum(t *testing.T, what string, m *vit.Model, x *vit.Tensor, bySource bool) {
	t.Helper()
	for target := 0; target < m.Config.Classes; target++ {
		r, err := dla.Compute(m, x, dla.Options{Target: target, BySource: bySource})
		if err != nil {
			t.Fatal(err)
		}
		want := float64(r.Logits[target])
		if got := r.Total(); math.Abs(got-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Fatalf("%s class %d: parts sum to %g, the model's logit is %g", what, target, got, want)
		}
		if !bySource {
			continue
		}
		// Float32 activations (pattern times values against z): 1e-5.
		total, split := map[[2]int]float64{}, map[[2]int]float64{}
		for _, p := range r.Parts {
			if p.Kind == dla.KindHead && p.Source < 0 {
				total[[2]int{p.Block, p.Head}] = p.Logit
			} else if p.Kind == dla.KindHead {
				split[[2]int{p.Block, p.Head}] += p.Logit
			}
		}
		for k, v := range total {
			if math.Abs(split[k]-v) > 1e-5*math.Max(1, math.Abs(v)) {
				t.Fatalf("%s block %d head %d: the split by source sums to %g, the head %g", what, k[0], k[1], split[k], v)
			}
		}
	}
}

func TestPartsSumToLogitOnEveryDemoSample(t *testing.T) {
	b, err := bundle.Demo(bundle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	if err := json.Unmarshal([]byte(vittest.Load(t, "fmnist").Meta["files"]), &files); err != nil {
		t.Fatal(err)
	}
	var rs []*dla.Result
	for k, f := range files {
		data, err := public.Files.ReadFile(filepath.Join(public.SamplesDir, f))
		if err != nil {
			t.Fatal(err)
		}
		img, err := preprocess.Decode(bytes.NewReader(data), f)
		if err != nil {
			t.Fatal(err)
		}
		x, err := b.Preset.Apply(img, b.Model.Config.ImageSize)
		if err != nil {
			t.Fatal(err)
		}
		checkSum(t, f, b.Model, x, k < 3)
		r, err := dla.Compute(b.Model, x, dla.Options{Target: k % b.Model.Config.Classes})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	checkSummary(t, b.Model.Config, files, rs)
}

// checkSummary: the mean parts sum to the mean logit, and the heads grid is
// the mean of the images' grids.
func checkSummary(t *testing.T, c vit.Config, files []string, rs []*dla.Result) {
	t.Helper()
	s := dla.Summarize(c, files, rs)
	sum := s.Embed + s.PosEmbed + s.Bias
	for b := range c.Depth {
		sum += s.AttnBias[b] + s.MLP[b]
		for h := range c.Heads {
			sum += s.Heads[b][h]
			want := 0.0
			for _, r := range rs {
				want += r.HeadGrid(c)[b][h] / float64(len(rs))
			}
			if math.Abs(s.Heads[b][h]-want) > 1e-12*math.Max(1, math.Abs(want)) {
				t.Fatalf("summary block %d head %d: %g, mean of the grids %g", b, h, s.Heads[b][h], want)
			}
		}
	}
	if math.Abs(sum-s.Logit) > 1e-4*math.Max(1, math.Abs(s.Logit)) || len(s.Targets) != len(rs) {
		t.Fatalf("summary parts sum to %g, mean logit %g (%d targets)", sum, s.Logit, len(s.Targets))
	}
}

// The random-weight fixtures cover pre-norm CLS models with registers and
// LayerScale (ls_reg), norm_pre and QuickGELU (clip: its projection as the
// head, then through its class head file, then through the one that
// L2-normalises), odd sizes, the post-norm mean-pooled gap model and
// distilled DeiT; every input image of each.
func TestPartsSumToLogitOnFixtures(t *testing.T) {
	for _, f := range []struct{ name, folder, head string }{
		{"tiny", "tiny", ""}, {"odd", "odd", ""}, {"nobias", "nobias", ""}, {"ls_reg", "ls_reg", ""},
		{"dinov2", "dinov2", ""}, {"gap", "gap", ""}, {"deit_dist", "deit_dist", ""}, {"clip", "clip", ""},
		{"clip_head", "clip", "head.safetensors"}, {"clip_normalize", "clip", "head_normalize.safetensors"},
	} {
		t.Run(f.name, func(t *testing.T) {
			m := loadModel(t, f.folder, f.head)
			g := vittest.Load(t, f.folder)
			images := 0
			for ; g.Has(fmt.Sprintf("input.%d", images)); images++ {
				checkSum(t, fmt.Sprintf("%s image %d", f.name, images), m, g.MustTensor(t, fmt.Sprintf("input.%d", images)), true)
			}
			if images == 0 {
				t.Fatal("no input images")
			}
		})
	}
}
