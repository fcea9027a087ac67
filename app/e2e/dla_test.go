package e2e

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"vitlens/app/session"
	"vitlens/vit/dla"
)

// The page's heads × blocks DLA grid for the first sample and its target
// class holds the numbers vit/dla computes natively for the same image.
func TestDLAGrid(t *testing.T) {
	ctx, _ := openApp(t, false)
	m, samples := demo(t)
	want := nativeAnalysis(t, m, samples[0], session.Settings{Target: -1})
	r, err := dla.Compute(m.Model, want.Input.Pixels, dla.Options{Target: want.Base.Target})
	if err != nil {
		t.Fatal(err)
	}
	grid := r.HeadGrid(m.Model.Config)
	got, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => {
		const cells = [...document.querySelectorAll('#fig-dla rect[data-value]')];
		return cells.length > 0 && JSON.stringify(cells.map(c => [+c.dataset.row, +c.dataset.col, +c.dataset.value])); })()`,
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatalf("DLA grid not shown: %v", err)
	}
	var cells [][3]float64
	if err := json.Unmarshal([]byte(got), &cells); err != nil {
		t.Fatal(err)
	}
	if n := m.Model.Config.Depth * m.Model.Config.Heads; len(cells) != n {
		t.Fatalf("%d cells, want %d", len(cells), n)
	}
	for _, c := range cells {
		w := grid[int(c[0])][int(c[1])]
		if math.Abs(c[2]-w) > 1e-4*math.Max(1, math.Abs(w)) {
			t.Errorf("block %v head %v: page %g, native %g", c[0], c[1], c[2], w)
		}
	}
	screenshot(t, ctx, "demo-dla")
}
