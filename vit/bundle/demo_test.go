package bundle

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"vitlens/public"
	"vitlens/vit"
	"vitlens/vit/preprocess"
	"vitlens/vit/vittest"
)

// The whole pipeline on the demo model: PNG decode, the fmnist preset and the
// forward pass against PyTorch's logits for every sample image
// (testdata/reference/fmnist, made by tools/train/train_fmnist.py --golden).
// Tolerance 1e-4·max(1,|x|), as for the random-weight fixtures.
func TestDemoMatchesTorch(t *testing.T) {
	b, err := Demo(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Preset.Name != "fmnist" || len(b.Classes) != 10 || b.Classes[9] != "Ankle boot" {
		t.Fatalf("demo bundle: preset %q, classes %v", b.Preset.Name, b.Classes)
	}
	g := vittest.Load(t, "fmnist")
	var files []string
	if err := json.Unmarshal([]byte(g.Meta["files"]), &files); err != nil {
		t.Fatal(err)
	}
	if len(files) != 30 {
		t.Fatalf("%d sample files in the golden", len(files))
	}
	worst := 0.0
	for k, f := range files {
		data, err := public.Files.ReadFile(filepath.Join(public.SamplesDir, f))
		if err != nil {
			t.Fatal(err)
		}
		img, err := preprocess.Decode(bytesReader(data), f)
		if err != nil {
			t.Fatal(err)
		}
		x, err := b.Preset.Apply(img, b.Model.Config.ImageSize)
		if err != nil {
			t.Fatal(err)
		}
		taps := vit.Taps{}
		if k == 0 {
			taps = vit.TapSites(vit.SiteHS)
		}
		tr, err := b.Model.Forward(x, vit.Options{Taps: taps})
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string, got, want []float32) {
			for i := range want {
				d := math.Abs(float64(got[i]-want[i])) / math.Max(1, math.Abs(float64(want[i])))
				worst = math.Max(worst, d)
				if d > 1e-4 {
					t.Fatalf("%s %s[%d] = %g, torch %g", f, what, i, got[i], want[i])
				}
			}
		}
		check("logits", tr.Logits, g.MustTensor(t, fmt.Sprintf("logits.%d", k)).Data)
		if k == 0 {
			for blk := 0; blk < b.Model.Config.Depth; blk++ {
				check(fmt.Sprintf("hs.%d", blk), tr.Site(vit.SiteHS, blk).Data, g.MustTensor(t, fmt.Sprintf("hs.%d.0", blk)).Data)
			}
		}
	}
	t.Logf("worst relative difference from torch: %.2g", worst)
}
