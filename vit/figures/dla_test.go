package figures

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vitlens/vit/dla"
	"vitlens/vit/experiment"
)

// A dla folder loads without a manifest and draws its heads × blocks grid
// and tables; a dla.json without a grid is refused, naming the file.
func TestDLAFigure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "boot-dla")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := dla.Summary{Images: []string{"a.png", "b.png"}, Targets: []int{9, 9},
		Heads: [][]float64{{1, -2}, {0.5, 3}, {0, -0.25}}, AttnBias: []float64{0.1, 0.2, 0.3}, MLP: []float64{-1, 2, 4},
		Embed: 0.5, Bias: -0.4, Logit: 7.95}
	if err := experiment.WriteJSON(dir, dla.SummaryFile, s); err != nil {
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
	if last.Title != "Direct logit attribution" || len(last.Figures) != 1 || len(last.Tables) != 2 {
		t.Fatalf("sections: last %q with %d figures, %d tables", last.Title, len(last.Figures), len(last.Tables))
	}
	grid := last.Tables[0]
	if len(grid.Header) != 5 || len(grid.Rows) != 3 || grid.Rows[1][2] != "3.000" || grid.Rows[2][4] != "4.000" {
		t.Fatalf("grid table %v %v", grid.Header, grid.Rows)
	}
	if got := last.Tables[1].Rows[3][1]; got != "7.950" {
		t.Fatalf("target logit printed %q", got)
	}
	if _, err := last.Figures[0].SVG(); err != nil {
		t.Fatal(err)
	}

	s.MLP = s.MLP[:2]
	if err := experiment.WriteJSON(dir, dla.SummaryFile, s); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "dla.json has no heads × blocks grid") {
		t.Fatalf("a short mlp list: %v", err)
	}
}
