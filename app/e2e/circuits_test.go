package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"vitlens/app/session"
	"vitlens/vit"
	"vitlens/vit/dla"
	"vitlens/vit/patching"
)

// The page's heads × blocks DLA grid for the first sample and its target
// class holds the numbers vit/dla computes natively for the same image; a
// clicked cell of the patching map (sample 1 corrupted) the rank and logit
// vit/patching computes for the same pair.
func TestDLAAndPatching(t *testing.T) {
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

	// Patching: sample 1 is the corrupted image; a clicked head's rank and
	// logit of the clean class are vit/patching's for the same pair.
	eval(t, ctx, `(() => { const s = document.getElementById('vl-corrupt'); s.value = '1'; s.dispatchEvent(new Event('change', {bubbles: true})); })()`)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!document.querySelector('#fig-patch rect[data-row="3"][data-col="1"]')`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("patching map not shown: %v", err)
	}
	eval(t, ctx, `document.querySelector('#fig-patch rect[data-row="3"][data-col="1"]').dispatchEvent(new MouseEvent('click', {bubbles: true}))`)
	cell, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => { const c = document.getElementById('vl-patch-cell');
		return c && c.dataset.rank !== '' && c.dataset.rank !== undefined && JSON.stringify([+c.dataset.block, +c.dataset.head, +c.dataset.rank, +c.dataset.logit]); })()`,
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatalf("clicked cell not reported: %v", err)
	}
	var at [4]float64
	if err := json.Unmarshal([]byte(cell), &at); err != nil {
		t.Fatal(err)
	}
	corrupt := nativeAnalysis(t, m, samples[1], session.Settings{Target: -1})
	c := m.Model.Config
	hook := vit.Hook{Point: vit.HookZ, Block: 3}
	for k, kind := range []string{"rank", "logit"} {
		r := patching.Run{Model: m.Model, Mode: patching.ModePatch, Metric: patching.Metric{Kind: kind, A: want.Predicted()}}
		src, _, err := r.Cache(want.Input.Pixels, []vit.Hook{hook})
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Patch(corrupt.Input.Pixels, []patching.Site{{Hook: hook, Head: 1, Token: -1}}, src, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := at[2+k]; at[0] != 3 || at[1] != 1 || math.Abs(got-res[0].Metric) > 1e-4*math.Max(1, math.Abs(res[0].Metric)) {
			t.Errorf("block 3 head 1 %s: page %v, vit/patching %g (%d heads)", kind, at, res[0].Metric, c.Heads)
		}
	}
	screenshot(t, ctx, "demo-patch")

	// "Activations" downloads the image's hooks as a cache file; its header
	// names every hook with its [1, ...] shape (the values are checked
	// natively by app/session's TestActivationsFile).
	recordDownloads(t, ctx)
	eval(t, ctx, `document.querySelector('#vl-dla .vl-chip[data-export="activations"]').click()`)
	d := waitDownloads(t, ctx, 1)[0]
	last := vit.Hook{Point: vit.HookResidPost, Block: c.Depth - 1}
	if !strings.HasSuffix(d.Name, "-activations.safetensors") || !strings.Contains(d.Text, `"`+last.Name()+`"`) ||
		!strings.Contains(d.Text, fmt.Sprintf(`"shape":[1,%d,%d]`, c.NumTokens(), c.Dim)) {
		t.Errorf("activations download %q: header %.300q", d.Name, d.Text)
	}
}
