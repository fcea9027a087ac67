package figures

import (
	"os"
	"path/filepath"
	"testing"

	"vitlens/vit/experiment"
	"vitlens/vit/tunedlens"
)

// A tune-lens folder loads without a manifest and draws both lenses' curves.
func TestTunedLensFigure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fmnist-tl")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rep := tunedlens.Report{Fit: "ridge", Train: 5, HeldOut: 5}
	for b := range 3 {
		rep.Blocks = append(rep.Blocks, tunedlens.BlockStats{Block: b, KLPlain: 1 - 0.3*float64(b), KLTuned: 0.5 - 0.2*float64(b),
			IdentPlain: 0.6 + 0.1*float64(b), IdentTuned: 0.7 + 0.05*float64(b)})
	}
	if err := experiment.WriteJSON(dir, "tuned_lens.json", rep); err != nil {
		t.Fatal(err)
	}
	r, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Build([]*Run{r}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	last := out.Sections[len(out.Sections)-1]
	if last.Title != "Tuned lens" || len(last.Figures) != 1 || len(last.Tables[0].Rows) != 3 {
		t.Fatalf("sections: last %q with %d figures", last.Title, len(last.Figures))
	}
	if last.Tables[0].Rows[2][2] != "0.100" {
		t.Fatalf("block 3 kl_tuned printed %q", last.Tables[0].Rows[2][2])
	}
	if _, err := last.Figures[0].SVG(); err != nil {
		t.Fatal(err)
	}
}
