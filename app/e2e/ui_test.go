package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"vitlens/app/session"
	"vitlens/vit"
	"vitlens/vit/lens"
)

// Every export saves what the page shows, before and after an
// intervention: each CSV equals the native analysis' (numbers within
// 1e-3), each PNG equals the figures on screen rasterised independently.
func TestExports(t *testing.T) {
	ctx, s := openApp(t, false)
	m, samples := demo(t)
	recordDownloads(t, ctx)
	checkExports(t, ctx, "unperturbed", nativeAnalysis(t, m, samples[0], session.Settings{Target: -1}))

	eval(t, ctx, `document.getElementById('vl-mode-drop').click()`)
	for _, tok := range []int{5, 9} {
		prev := s.Seq
		eval(t, ctx, fmt.Sprintf(`document.querySelector('#fig-overlay rect[data-token="%d"]').dispatchEvent(new MouseEvent('click', {bubbles: true}))`, tok))
		s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d`, prev), firstLoad)
	}
	eval(t, ctx, `document.querySelector('input[name="vl-edit"][value="no_cls"]').click()`)
	waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && j.edit === 'no_cls'`, s.Seq), firstLoad)
	checkExports(t, ctx, "intervention", nativeAnalysis(t, m, samples[0], session.Settings{Target: -1, Edit: vit.EditNoCLS, Drop: []int{5, 9}}))
}

// checkExports clicks every export button and checks each file against want
// (the selected token is [CLS], the site hs).
func checkExports(t *testing.T, ctx context.Context, state string, want *session.Analysis) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!document.querySelector('#fig-explain svg')`,
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("%s: explanation maps not drawn: %v", state, err)
	}
	// The activations file is binary: TestDLAAndPatching checks it.
	eval(t, ctx, `document.querySelectorAll('.vl-chip:not([data-export="activations"])').forEach(b => b.click())`)
	downloads := waitDownloads(t, ctx, 10)
	base := strings.TrimSuffix(want.Image.Name, filepath.Ext(want.Image.Name)) + "-"
	got := map[string]download{}
	var names []string
	for _, d := range downloads {
		got[strings.TrimPrefix(d.Name, base)] = d
		names = append(names, d.Name)
	}
	if len(got) != 10 {
		t.Errorf("%s: %d distinct downloads, want 10: %q", state, len(got), names)
	}
	memories, err := want.MemoriesCSV(0)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := session.AttentionOf(want.Current(), 0)
	if err != nil {
		t.Fatal(err)
	}
	attention, err := want.AttentionCSV(rows)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"predictions.csv": want.PredictionsCSV(), "readouts.csv": want.ReadoutsCSV(),
		"identifiability-hs.csv": want.CurveCSV(vit.SiteHS), "memories-token0.csv": memories, "attention-token0.csv": attention,
	} {
		d, ok := got[name]
		if !ok {
			t.Errorf("%s: no %s among %q", state, name, names)
			continue
		}
		sameCSV(t, state+" "+name, []byte(d.Text), data, 1e-3)
	}
	overlay := "overlay.png"
	if want.After != nil {
		overlay = "overlay-before-after.png"
	}
	for name, id := range map[string]string{overlay: "fig-overlays", "curve.png": "fig-curve", "heatmap.png": "fig-heatmap",
		"attention.png": "fig-attention", "explain.png": "fig-explain"} {
		d, ok := got[name]
		if !ok {
			t.Errorf("%s: no %s among %q", state, name, names)
			continue
		}
		labels := figurePNG(t, ctx, d, id)
		// The figures themselves show the state.
		switch {
		case name == overlay && want.After == nil && !slices.Equal(labels, []string{"unperturbed"}):
			t.Errorf("%s: overlay PNG of %q", state, labels)
		case name == overlay && want.After != nil && (len(labels) != 2 || labels[0] != "before" || !strings.HasPrefix(labels[1], "after: no_cls, 2 dropped")):
			t.Errorf("%s: overlay PNG of %q, want before and after", state, labels)
		case name == "heatmap.png" && strings.Contains(labels[0], "after the intervention") != (want.After != nil):
			t.Errorf("%s: heat-map PNG of %q", state, labels)
		}
	}
}

// The whole journey by keyboard: the file pickers are in the tab order,
// a patch is dropped and a heat-map cell chosen with arrow keys and Enter,
// an export saved with Enter; focus is always visible, and axe-core finds
// no serious or critical violation before and after.
func TestKeyboard(t *testing.T) {
	ctx, s := openApp(t, false)
	m, samples := demo(t)
	checkAxe(t, ctx, "demo loaded")
	if label, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.vl-thumb').getAttribute('aria-label') ||
		document.querySelector('.vl-thumb img').alt`)); err != nil || label != "ankle boot (test 0)" {
		t.Errorf("first sample's name: %q, %v", label, err)
	}

	for _, sel := range []string{"#vl-model-file", "#vl-image-file"} {
		n := pressUntil(t, ctx, sel, 40)
		if ring := focusRing(t, ctx); ring == "" {
			t.Errorf("%s: no visible focus", sel)
		}
		t.Logf("%s reached after %d presses of Tab", sel, n)
	}
	// The focused picker opens the browser's file chooser on Enter; the test
	// hands the file to it directly.
	img := samples[3]
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("vl-image-file"),
		[]string{filepath.Join(repoRoot(), "public", "samples", img.Name)})); err != nil {
		t.Fatal(err)
	}
	s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && j.image === %q`, s.Seq, img.Name), firstLoad)

	pressUntil(t, ctx, "#vl-mode-drop", 40)
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	pressUntil(t, ctx, "#fig-overlays", 40)
	if ring := focusRing(t, ctx); ring == "" {
		t.Error("patch grid: no visible focus")
	}
	// The cursor starts on the first patch ([CLS] is selected); right, down
	// and Enter drop patch (1, 1), token 1 + 4 + 1 in the 4×4 grid.
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.ArrowRight+kb.ArrowDown+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && JSON.stringify(j.drop) === '[6]'`, s.Seq), firstLoad)
	sameRanks(t, "patch dropped by keyboard", s.summary(t), native(t, m, img, session.Settings{Target: -1, Drop: []int{6}}))
	focus, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id + ' ' +
		document.querySelectorAll('#fig-overlays rect[stroke-dasharray]').length + ' ' + document.getElementById('vl-patch-info').innerText`))
	if err != nil || !strings.HasPrefix(focus, "fig-overlays 2 ") || !strings.Contains(focus, "patch (1, 1) (keyboard cursor)") {
		t.Errorf("after the drop: focus, cursor rings, info = %q, %v", focus, err)
	}
	screenshot(t, ctx, "keyboard-drop")

	// A heat-map cell: the cursor starts on the selected block and token.
	pressUntil(t, ctx, "#vl-heatmap [data-keys]", 40)
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.ArrowRight+kb.ArrowRight+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => { const h = document.querySelector('#vl-memories h2').innerText;
		return h.includes('patch (0, 1)') && h + ' | ' + document.getElementById('vl-heatmap-said').innerText; })()`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil || !strings.Contains(title, "block 6 · patch (0, 1): rank") {
		t.Errorf("heat-map cell by keyboard: %q, %v", title, err)
	}
	// The new token's attention rows come from the engine (KindAttention).
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!document.querySelector('#vl-attention [data-keys]')`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("the attention maps of the heat-map's token never came: %v", err)
	}
	pressUntil(t, ctx, "#vl-attention [data-keys]", 40)
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.ArrowUp+kb.ArrowRight)); err != nil {
		t.Fatal(err)
	}
	said, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => { const s = document.getElementById('vl-attention-said').innerText;
		return s.startsWith('block 5, head 2: max weight on a patch') && s; })()`, chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		last, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('vl-attention-said').innerText`))
		t.Errorf("attention map by keyboard: %q, %v", last, err)
	}
	t.Logf("read out on the attention maps: %s", said)

	recordDownloads(t, ctx)
	pressUntil(t, ctx, "#vl-explain .vl-chip", 40)
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	if d := waitDownloads(t, ctx, 1); !strings.HasSuffix(d[0].Name, "-explain.png") {
		t.Errorf("export by keyboard: %v", d)
	}
	checkAxe(t, ctx, "patch dropped, cursor on the attention maps")
}

// On a phone the results come first, the controls fold into one button and
// nothing but wide figures scrolls sideways; on a laptop no row of results
// leaves a large empty column.
func TestLayout(t *testing.T) {
	ts := serve(t)
	ctx := browser(t, false)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Navigate(ts.URL)); err != nil {
		t.Fatal(err)
	}
	waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1 && !!document.querySelector('#fig-explain svg')`, firstLoad)
	type phone struct {
		Header, FirstResult, ScrollWidth, Width float64
		Wide                                    []string
	}
	measure := `(() => {
		const top = e => e.getBoundingClientRect().top + scrollY;
		const wide = [...document.querySelectorAll('body *')].filter(e => {
			const r = e.getBoundingClientRect();
			return r.width > 0 && (r.right > innerWidth + 1 || r.left < -1) && !e.closest('.vl-scroll') && !e.closest('.vl-sr-only');
		}).slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className);
		return {header: document.querySelector('.vl-top').getBoundingClientRect().height,
			firstresult: top(document.getElementById('vl-overlay-card')),
			scrollwidth: document.documentElement.scrollWidth, width: innerWidth, wide}; })()`
	p, err := chromedp.Run(ctx, chromedp.Evaluate[phone](measure))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("390x844: header %.0f px, first result at %.0f px, page %.0f px wide", p.Header, p.FirstResult, p.ScrollWidth)
	if p.Header > 0.1*844 || p.FirstResult > 844/4 || p.ScrollWidth > p.Width || len(p.Wide) > 0 {
		t.Errorf("phone layout: %+v", p)
	}
	screenshot(t, ctx, "phone-390x844")
	eval(t, ctx, `document.getElementById('vl-controls-toggle').click()`)
	open, err := chromedp.Run(ctx, chromedp.Poll[float64](`(() => { const r = document.getElementById('vl-model').getBoundingClientRect();
		return r.height > 0 && document.getElementById('vl-controls-toggle').getAttribute('aria-expanded') === 'true' && r.height; })()`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		t.Errorf("controls do not unfold: %v", err)
	}
	if p, err = chromedp.Run(ctx, chromedp.Evaluate[phone](measure)); err != nil || p.ScrollWidth > p.Width || len(p.Wide) > 0 {
		t.Errorf("phone layout with the controls open (model card %.0f px high): %+v, %v", open, p, err)
	}
	screenshot(t, ctx, "phone-390x844-controls")
	checkAxe(t, ctx, "phone, controls open")

	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	// Each row of results reaches the right edge of the results column, and
	// each figure fills most of its card.
	type gap struct {
		Name           string
		Outside, Ratio float64
	}
	gaps, err := chromedp.Run(ctx, chromedp.Poll[[]gap](`(() => {
		const main = document.querySelector('.vl-main').getBoundingClientRect();
		if (main.width > 1000) return false;
		const out = [];
		for (const row of document.querySelectorAll('.vl-main > *')) {
			const cards = row.matches('.vl-row') ? [...row.querySelectorAll(':scope > .vl-card, :scope > .vl-col > .vl-card')] : [row];
			const right = Math.max(...cards.map(c => c.getBoundingClientRect().right));
			for (const c of cards) {
				const figs = [...c.querySelectorAll('.vl-figure svg')].map(f => f.getBoundingClientRect());
				const body = c.querySelector('.vl-card-body').getBoundingClientRect();
				const used = figs.length ? (Math.max(...figs.map(f => f.right)) - body.left) / body.width : 1;
				out.push({name: c.id, outside: Math.round(main.right - right), ratio: Math.round(100 * used) / 100});
			}
		}
		return out; })()`, chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1280x800: %+v", gaps)
	for _, g := range gaps {
		if g.Outside > 24 || g.Ratio < 0.7 {
			t.Errorf("1280x800: %s leaves %.0f px empty on its right, its figures fill %.0f%% of it", g.Name, g.Outside, 100*g.Ratio)
		}
	}
	screenshot(t, ctx, "laptop-1280x800")
}

// The paper's comparison in one click: the demo beside its random
// initialisation on the same image and class, both equal to the native
// analyses, before and after dropping a patch; both export.
func TestCompareRandomInit(t *testing.T) {
	ctx, s := openApp(t, false)
	m, samples := demo(t)
	r, err := m.RandomInit(session.RandomSeed)
	if err != nil {
		t.Fatal(err)
	}
	target := s.summary(t).Target
	eval(t, ctx, `document.getElementById('vl-compare-random').click()`)
	b := waitCompare(t, ctx, `c.model.startsWith('random init of demo:fmnist-vit') && !c.drop`)
	if b.Target != target {
		t.Errorf("the random init ranks class %d, the model %d", b.Target, target)
	}
	want := nativeAnalysis(t, r, samples[0], session.Settings{Target: target})
	sameRanks(t, "random init", b, want.Summary())
	shape, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const c = document.getElementById('vl-compare');
		return c.querySelectorAll('table.vl-pred').length + ' tables, ' + c.querySelectorAll('#fig-compare-curve path[stroke-width="2.2"]').length +
			' curves, ' + c.querySelectorAll('#vl-compare-heatmaps svg').length + ' heat-maps'; })()`))
	if err != nil || shape != "2 tables, 4 curves, 2 heat-maps" {
		t.Errorf("comparison: %q, %v", shape, err)
	}
	if shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
		saveShot(t, "compare-random-init", shot)
	}
	checkAxe(t, ctx, "two models side by side")

	recordDownloads(t, ctx)
	eval(t, ctx, `document.querySelectorAll('#vl-compare .vl-chip').forEach(b => b.click())`)
	got := map[string]download{}
	for _, d := range waitDownloads(t, ctx, 3) {
		got[d.Name] = d
	}
	first := nativeAnalysis(t, m, samples[0], session.Settings{Target: -1})
	base := strings.TrimSuffix(samples[0].Name, ".png") + "-"
	if d, ok := got[base+"compare-readouts.csv"]; !ok {
		t.Errorf("no comparison CSV among %v", got)
	} else {
		sameCSV(t, "comparison CSV", []byte(d.Text), session.CompareCSV(first, want), 1e-3)
	}
	if d, ok := got[base+"compare-heatmaps.png"]; !ok {
		t.Errorf("no heat-maps PNG")
	} else if labels := figurePNG(t, ctx, d, "vl-compare-heatmaps"); len(labels) != 2 || !strings.HasPrefix(labels[1], "B: random init") {
		t.Errorf("heat-maps PNG of %q", labels)
	}
	if d, ok := got[base+"compare-curve.png"]; !ok {
		t.Errorf("no curve PNG")
	} else {
		figurePNG(t, ctx, d, "fig-compare-curve")
	}

	// Dropping a patch drops it in both models.
	eval(t, ctx, `document.getElementById('vl-mode-drop').click()`)
	eval(t, ctx, `document.querySelector('#fig-overlay rect[data-token="6"]').dispatchEvent(new MouseEvent('click', {bubbles: true}))`)
	b = waitCompare(t, ctx, `JSON.stringify(c.drop) === '[6]'`)
	sameRanks(t, "random init, patch dropped", b, native(t, r, samples[0], session.Settings{Target: target, Drop: []int{6}}))
	// Stopping leaves the model alone.
	eval(t, ctx, `document.querySelector('#vl-comparing .vl-link').click()`)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!document.getElementById('vl-compare')`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Errorf("comparison still shown after stopping: %v", err)
	}
}

// waitCompare waits until the second model's analysis (c, parsed from
// #vl-state-compare) satisfies cond.
func waitCompare(t *testing.T, ctx context.Context, cond string) session.Summary {
	t.Helper()
	js, err := chromedp.Run(ctx, chromedp.Poll[string](fmt.Sprintf(`(() => {
		const d = document.getElementById('vl-state').dataset;
		const text = document.getElementById('vl-state-compare').textContent;
		const c = JSON.parse(text || '{}');
		return d.status === 'ready' && !!c.model && (%s) && text; })()`, cond),
		chromedp.WithPollingTimeout(firstLoad), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		last, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('vl-state').dataset.error + ' | ' +
			document.getElementById('vl-state-compare').textContent.slice(0, 200)`))
		t.Fatalf("waiting for the second model (%s): %v (%s)", cond, err, last)
	}
	var s session.Summary
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// A tuned lens loaded beside the demo model: the page reads through it (its
// ranks are the native tuned ones), the curve shows both lenses, and the
// toggle returns to the plain lens.
func TestTunedLens(t *testing.T) {
	ctx, s := openApp(t, false)
	m, samples := demo(t)
	c := m.Model.Config
	tl := lens.NewTranslators(c.Dim, c.Depth)
	for _, site := range lens.TranslatorSites {
		for b := range c.Depth - 1 {
			tr := tl.At(site, b)
			for i := range tr.W {
				tr.W[i] = float32((i*7)%11-5) * 0.02
			}
			for i := range tr.B {
				tr.B[i] = float32(i%3-1) * 0.5
			}
		}
	}
	data, err := tl.Encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "translators.safetensors")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := lens.ReadTranslators(path, data, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("vl-lens-file"), []string{path})); err != nil {
		t.Fatal(err)
	}
	s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && document.getElementById('vl-lens')`, s.Seq), 60*time.Second)
	if s.Error != "" {
		t.Fatalf("error: %s", s.Error)
	}
	sameRanks(t, "demo through the tuned lens", s.summary(t), nativeAnalysis(t, m, samples[0], session.Settings{Target: -1, Lens: back}).ThroughLens(true).Summary())
	legend, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('fig-curve').textContent`))
	if err != nil || !strings.Contains(legend, "plain lens") || !strings.Contains(legend, "tuned lens") {
		t.Errorf("curve legend: %q, %v", legend, err)
	}
	screenshot(t, ctx, "tuned-lens")
	eval(t, ctx, `document.getElementById('vl-lens-tuned').click()`)
	prev, _ := json.Marshal(s.JSON) // a JS string literal: wait until the page re-renders
	s = waitState(t, ctx, fmt.Sprintf(`!document.getElementById('vl-lens-tuned').checked && e.textContent !== %s`, prev), 10*time.Second)
	sameRanks(t, "demo, toggled back to the plain lens", s.summary(t), native(t, m, samples[0], session.Settings{Target: -1}))
}
