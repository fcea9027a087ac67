package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

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

	// Patching: sample 1 is the corrupted image, the metric the clean
	// class's logit; a clicked head's rank and logit of the clean class are
	// vit/patching's for the same pair.
	selectValue(t, ctx, "vl-corrupt", "s1")
	c := m.Model.Config
	// Class B of the logit difference from its menu: the corrupted image's
	// prediction, then every class.
	selectValue(t, ctx, "vl-patch-versus", "7")
	versus, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => {
		const m = document.getElementById('vl-patch-map'), s = document.getElementById('vl-patch-versus');
		return m && m.dataset.metric.endsWith(',7') && s.options.length + ' | ' + s.options[8].text + ' | ' + m.dataset.metric; })()`,
		chromedp.WithPollingTimeout(20*time.Second)))
	if wantB := fmt.Sprintf("%d | 7 · %s | logit_diff:%d,7", c.Classes+1, m.ClassName(7), want.Base.Target); err != nil || versus != wantB {
		t.Errorf("class B from its menu: %q, %v; want %q", versus, err, wantB)
	}
	selectValue(t, ctx, "vl-patch-metric", "logit")
	checkHeadCell(t, ctx, m, want, samples[1])
	screenshot(t, ctx, "demo-patch")

	// The keyboard: focus from the keyboard puts the cursor on (0, 0); two
	// rows down, one column right and Enter patch block 2's head 1.
	eval(t, ctx, `document.getElementById('vl-patch-map').focus({focusVisible: true})`)
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.ArrowDown+kb.ArrowDown+kb.ArrowRight+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => { const c = document.getElementById('vl-patch-cell');
		return c.dataset.block === '2' && c.dataset.col === '1'; })()`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		said, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('vl-patch-said').textContent`))
		t.Errorf("Enter on the keyboard cursor did not patch block 2 head 1 (cursor reads %q): %v", said, err)
	}

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

// An image of the user's own (opened with the file picker, then replaced by
// a sample as the current image) is chosen as the corrupted image; the
// blocks × tokens map of hook_resid_pre with the logit difference (clean
// class − corrupted class) holds session.Patch's numbers, and a clicked
// cell moves the clean class's rank to what vit/patching gives natively.
// Swap then makes the user's image the clean one.
func TestPatchUserImage(t *testing.T) {
	ctx, s := openApp(t, false)
	m, samples := demo(t)
	c := m.Model.Config

	// The user's image: a sample mirrored, so that it is none of them.
	src := samples[1].Src
	b := src.Bounds()
	mirrored := image.NewNRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			mirrored.Set(b.Max.X-1-(x-b.Min.X), y, src.At(x, y))
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, mirrored); err != nil {
		t.Fatal(err)
	}
	const name = "my-corrupted.png"
	file := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	mine, err := session.DecodeImage(name, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}

	// Natively: the map, and the last block's [CLS] cell, which must move the rank.
	clean, corrupt := nativeAnalysis(t, m, samples[0], session.Settings{Target: -1}), nativeAnalysis(t, m, mine, session.Settings{Target: -1})
	opt := session.PatchOptions{Grid: session.GridResidPre, Metric: "logit_diff", A: -1, B: -1}
	pm, err := session.Patch(m.Model, clean.Input.Pixels, corrupt.Input.Pixels, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	block, token := c.Depth-1, 0
	hook := vit.Hook{Point: vit.HookResidPre, Block: block}
	var native [2]float64 // rank, logit difference
	for k, metric := range []patching.Metric{{Kind: "rank", A: pm.CleanClass}, {Kind: "logit_diff", A: pm.CleanClass, B: pm.CorruptClass}} {
		r := patching.Run{Model: m.Model, Mode: patching.ModePatch, Metric: metric}
		src, _, err := r.Cache(clean.Input.Pixels, []vit.Hook{hook})
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Patch(corrupt.Input.Pixels, []patching.Site{{Hook: hook, Head: -1, Token: token}}, src, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		native[k] = res[0].Metric
	}
	if int(native[0]) == pm.CorruptRank {
		t.Fatalf("the chosen cell does not move the rank natively (%d): pick another", pm.CorruptRank)
	}

	// The user's image opened, then sample 0 shown again: the upload stays
	// in the corrupted-image picker.
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("vl-image-file"), []string{file})); err != nil {
		t.Fatal(err)
	}
	s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && j.image === %q`, s.Seq, name), firstLoad)
	eval(t, ctx, `document.querySelector('.vl-thumb[data-sample="0"]').click()`)
	s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && j.image === %q`, s.Seq, samples[0].Name), firstLoad)
	value, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
		`([...document.querySelectorAll('#vl-corrupt option')].find(o => o.textContent === %q) || {value: ''}).value`, "yours: "+name)))
	if err != nil || value == "" {
		t.Fatalf("the user's image is not offered as the corrupted image (%v)", err)
	}
	selectValue(t, ctx, "vl-corrupt", value)
	selectValue(t, ctx, "vl-patch-grid", string(session.GridResidPre))

	// The whole map, then one clicked cell.
	got, err := chromedp.Run(ctx, chromedp.Poll[string](fmt.Sprintf(`(() => {
		const cells = [...document.querySelectorAll('#vl-patch-map[data-grid="resid_pre"][data-metric^="logit_diff:"] rect[data-value]')];
		return cells.length === %d && JSON.stringify(cells.map(c => [+c.dataset.row, +c.dataset.col, +c.dataset.value])); })()`, c.Depth*c.NumTokens()),
		chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("blocks × tokens map not shown: %v", err)
	}
	var cells [][3]float64
	if err := json.Unmarshal([]byte(got), &cells); err != nil {
		t.Fatal(err)
	}
	for _, cl := range cells {
		w := pm.Effect[int(cl[0])][int(cl[1])]
		if math.Abs(cl[2]-w) > 1e-4*math.Max(1, math.Abs(w)) {
			t.Errorf("block %v token %v: page %g, native %g", cl[0], cl[1], cl[2], w)
		}
	}
	base, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('vl-patch-base').textContent`))
	t.Logf("page: %s", base)
	at := clickPatchCell(t, ctx, block, token, string(session.GridResidPre), "logit_diff")
	if int(at[2]) != int(native[0]) || math.Abs(at[3]-native[1]) > 1e-4*math.Max(1, math.Abs(native[1])) {
		t.Errorf("block %d token %d: page rank %v, logit difference %v; vit/patching %v, %v (corrupted rank %d)",
			block, token, at[2], at[3], native[0], native[1], pm.CorruptRank)
	}

	// The clicked cell's block over the image: a patch clicked there is
	// that block's token, with the map's value.
	tok := c.FirstImageToken() + 5
	eval(t, ctx, fmt.Sprintf(`document.querySelector('#vl-patch-image[data-block="%d"] rect[data-token="%d"]').dispatchEvent(new MouseEvent('click', {bubbles: true}))`, block, tok))
	cell, err := chromedp.Run(ctx, chromedp.Poll[string](fmt.Sprintf(`(() => { const c = document.getElementById('vl-patch-cell');
		return c.dataset.col === '%d' && JSON.stringify([+c.dataset.block, +c.dataset.metric]); })()`, tok), chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatalf("a patch clicked over the image was not patched: %v", err)
	}
	var bm [2]float64
	if err := json.Unmarshal([]byte(cell), &bm); err != nil {
		t.Fatal(err)
	}
	if w := pm.Corrupt + pm.Effect[block][tok]; int(bm[0]) != block || math.Abs(bm[1]-w) > 1e-4*math.Max(1, math.Abs(w)) {
		t.Errorf("patch over the image: block %v, logit difference %v; native block %d, %g", bm[0], bm[1], block, w)
	}
	screenshot(t, ctx, "demo-patch-tokens")

	// Swap: the user's image becomes the clean one, sample 0 the corrupted.
	eval(t, ctx, `document.getElementById('vl-patch-swap').click()`)
	waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && j.image === %q`, s.Seq, name), firstLoad)
	if v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('vl-corrupt').value`)); err != nil || v != "s0" {
		t.Errorf("after Swap the corrupted image is %q (%v), want sample 0", v, err)
	}
}

// checkHeadCell clicks block 3's head 1 in the heads × blocks map of
// the logit (the corrupted image picked) and checks the rank and logit of
// the clean class the page shows against vit/patching's for the same pair.
func checkHeadCell(t *testing.T, ctx context.Context, m *session.Model, clean *session.Analysis, corruptImage *session.Image) {
	t.Helper()
	at := clickPatchCell(t, ctx, 3, 1, "heads", "logit")
	corrupt := nativeAnalysis(t, m, corruptImage, session.Settings{Target: -1})
	hook := vit.Hook{Point: vit.HookZ, Block: 3}
	for k, kind := range []string{"rank", "logit"} {
		r := patching.Run{Model: m.Model, Mode: patching.ModePatch, Metric: patching.Metric{Kind: kind, A: clean.Predicted()}}
		src, _, err := r.Cache(clean.Input.Pixels, []vit.Hook{hook})
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Patch(corrupt.Input.Pixels, []patching.Site{{Hook: hook, Head: 1, Token: -1}}, src, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := at[2+k]; at[0] != 3 || at[1] != 1 || math.Abs(got-res[0].Metric) > 1e-4*math.Max(1, math.Abs(res[0].Metric)) {
			t.Errorf("block 3 head 1 %s: page %v, vit/patching %g", kind, at, res[0].Metric)
		}
	}
}

// selectValue chooses value in the select with this id, as a user would.
func selectValue(t *testing.T, ctx context.Context, id, value string) {
	t.Helper()
	eval(t, ctx, fmt.Sprintf(`(() => { const s = document.getElementById(%q); s.value = %q;
		s.dispatchEvent(new Event('change', {bubbles: true})); })()`, id, value))
}

// clickPatchCell clicks a cell of the patching map once the map of this
// grid and metric kind is drawn, and returns what the page reports: block,
// column, rank and metric.
func clickPatchCell(t *testing.T, ctx context.Context, row, col int, grid, metric string) [4]float64 {
	t.Helper()
	sel := fmt.Sprintf(`#vl-patch-map[data-grid=%q][data-metric^="%s:"] #fig-patch rect[data-row="%d"][data-col="%d"]`, grid, metric, row, col)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`!!document.querySelector(%q)`, sel),
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("patching map not shown: %v", err)
	}
	eval(t, ctx, fmt.Sprintf(`document.querySelector(%q).dispatchEvent(new MouseEvent('click', {bubbles: true}))`, sel))
	cell, err := chromedp.Run(ctx, chromedp.Poll[string](fmt.Sprintf(`(() => { const c = document.getElementById('vl-patch-cell');
		return c && c.dataset.grid === %q && c.dataset.rank !== '' && JSON.stringify([+c.dataset.block, +c.dataset.col, +c.dataset.rank, +c.dataset.metric]); })()`, grid),
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatalf("clicked cell not reported: %v", err)
	}
	var at [4]float64
	if err := json.Unmarshal([]byte(cell), &at); err != nil {
		t.Fatal(err)
	}
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('vl-patch-cell').textContent`))
	t.Logf("clicked: %s", text)
	return at
}
