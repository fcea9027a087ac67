package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"vitlens/app/session"
	"vitlens/vit"
)

const firstLoad = 90 * time.Second // wasm compile + demo analysis on SwiftShader

// The demo analysis in the page equals the native CPU path, on WebGPU when
// the browser offers it; interventions, another target and the exports work.
func TestDemoWebGPU(t *testing.T) {
	ts := serve(t)
	ctx := browser(t, true)
	m, samples := demo(t)
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL)); err != nil {
		t.Fatal(err)
	}
	s := waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1`, firstLoad)
	t.Logf("backend %q (%s); first analysis %.0f ms after navigation (%v wall); analysis %.1f ms",
		s.Backend, s.Note, s.FirstMS, time.Since(start).Round(time.Millisecond), s.summary(t).ElapsedMS)
	if !strings.Contains(s.Backend, "WebGPU") {
		t.Logf("WebGPU was not used here: %s", s.Note)
	}
	sameRanks(t, "demo", s.summary(t), native(t, m, samples[0], session.Settings{Target: -1}))
	screenshot(t, ctx, "demo-webgpu")

	// Another class as the target.
	eval(t, ctx, `(() => { const s = document.getElementById('vl-target'); s.value = '3';
		s.dispatchEvent(new Event('change', {bubbles: true})); })()`)
	s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && j.target === 3`, s.Seq), firstLoad)
	t.Logf("second analysis: %.1f ms", s.summary(t).ElapsedMS)
	sameRanks(t, "target 3", s.summary(t), native(t, m, samples[0], session.Settings{Target: 3}))

	// Drop two patches and stop image tokens attending to [CLS].
	eval(t, ctx, `document.getElementById('vl-mode-drop').click()`)
	for _, tok := range []int{5, 9} {
		prev := s.Seq
		eval(t, ctx, fmt.Sprintf(`document.querySelector('#fig-overlay rect[data-token="%d"]').dispatchEvent(new MouseEvent('click', {bubbles: true}))`, tok))
		s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d`, prev), firstLoad)
	}
	eval(t, ctx, `document.querySelector('input[name="vl-edit"][value="no_cls"]').click()`)
	s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && j.edit === 'no_cls'`, s.Seq), firstLoad)
	got := s.summary(t)
	if got.After == nil || !equalInts(got.Drop, []int{5, 9}) {
		t.Fatalf("intervention not applied: drop %v, after %v", got.Drop, got.After != nil)
	}
	sameRanks(t, "intervention", got, native(t, m, samples[0], session.Settings{Target: 3, Edit: vit.EditNoCLS, Drop: []int{5, 9}}))
	screenshot(t, ctx, "demo-intervention")
}

func equalInts(a, b []int) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// With WebGPU off the page falls back to the CPU and says so; the ranks are
// the native ones.
func TestDemoCPUFallback(t *testing.T) {
	ctx, s := openApp(t, false)
	m, samples := demo(t)
	t.Logf("backend %q (%s); first analysis %.0f ms after navigation; analysis %.1f ms",
		s.Backend, s.Note, s.FirstMS, s.summary(t).ElapsedMS)
	if !strings.Contains(s.Backend, "CPU") || !strings.Contains(s.Note, "WebGPU unavailable") {
		t.Errorf("backend %q, note %q: want the CPU fallback, saying why", s.Backend, s.Note)
	}
	if !strings.Contains(s.Backend, "SIMD") { // Chromium has WebAssembly SIMD: vit/gemm_js.go's module must load
		t.Errorf("backend %q: want the matmul in WebAssembly SIMD", s.Backend)
	}
	sameRanks(t, "demo on CPU", s.summary(t), native(t, m, samples[0], session.Settings{Target: -1}))
	// The explanation maps (ours and Chefer et al.) are drawn for the target.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => {
		const imgs = document.querySelectorAll('#fig-explain image');
		return imgs.length === 3 && [...imgs].every(i => i.getAttribute('href').startsWith('data:image/png;base64,')); })()`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Errorf("explanation maps not shown: %v", err)
	}
	// Another sample from the gallery.
	eval(t, ctx, `document.querySelector('.vl-thumb[data-sample="4"]').click()`)
	s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d`, s.Seq), firstLoad)
	t.Logf("second image: analysis %.1f ms", s.summary(t).ElapsedMS)
	sameRanks(t, "sample 4 on CPU", s.summary(t), native(t, m, samples[4], session.Settings{Target: -1}))
	screenshot(t, ctx, "demo-cpu")

	// Hovering a patch lists its top-5 classes; another site and block
	// redraw the overlay.
	eval(t, ctx, `(() => {
		const s = document.getElementById('vl-site'); s.value = 'mlp'; s.dispatchEvent(new Event('change', {bubbles: true}));
		const b = document.getElementById('vl-block'); b.value = '2'; b.dispatchEvent(new Event('input', {bubbles: true}));
	})()`)
	eval(t, ctx, `document.querySelector('#fig-overlay rect[data-token="6"]').dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))`)
	info, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => {
		const i = document.getElementById('vl-patch-info'), o = document.getElementById('fig-overlay');
		return i && i.innerText.includes('patch (1, 1)') && i.innerText.includes('under the pointer') &&
			o.innerText.includes('mlp · block 2') && i.innerText; })()`, chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil || strings.Count(info, ". ") < 5 {
		t.Errorf("hover info: %q, %v", info, err)
	}
	// The heat-map's cells are one image: the cell under the pointer gets
	// its tooltip, and a click selects its block and token.
	const atCell = `const img = document.querySelector('#fig-heatmap image.vl-cells'), r = img.getBoundingClientRect();
		const at = (b, t) => ({bubbles: true, clientX: r.left + (t + 0.5) * r.width / +img.dataset.cols,
			clientY: r.top + (b + 0.5) * r.height / +img.dataset.rows});`
	eval(t, ctx, `(() => { `+atCell+` img.dispatchEvent(new MouseEvent('mousemove', at(1, 6))); })()`)
	tip, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => {
		const t = document.querySelector('#fig-heatmap image.vl-cells title').textContent;
		return t.startsWith('block 2 · patch (1, 1): rank ') && t; })()`, chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		t.Errorf("heat-map tooltip: %q, %v", tip, err)
	}
	eval(t, ctx, `(() => { `+atCell+` img.dispatchEvent(new MouseEvent('click', at(3, 5))); })()`)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('vl-block').value === '4' &&
		document.querySelector('#vl-memories h2').innerText.includes('patch (1, 0)')`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Errorf("heat-map click did not select block 4, patch (1, 0): %v", err)
	}
	// Dragging over the page must be accepted during the event itself, or
	// the browser never fires drop.
	accepted, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		const ev = new DragEvent('dragover', {dataTransfer: new DataTransfer(), bubbles: true, cancelable: true});
		document.querySelector('.vl-card').dispatchEvent(ev);
		return ev.defaultPrevented; })()`))
	if err != nil || !accepted {
		t.Errorf("dragover not accepted (preventDefault): %v", err)
	}
	// An image dropped on the page, then one pasted.
	for _, c := range []struct{ name, event string }{
		{"dropped.png", `document.querySelector('.vl-app').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}))`},
		{"pasted.png", `document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}))`},
	} {
		prev := s.Seq
		eval(t, ctx, fmt.Sprintf(`(() => {
			const c = document.createElement('canvas'); c.width = c.height = 28;
			const g = c.getContext('2d'); g.fillStyle = '#000'; g.fillRect(0, 0, 28, 28);
			g.fillStyle = '#ddd'; g.fillRect(8, 3, 12, 22);
			c.toBlob(b => { const dt = new DataTransfer(); dt.items.add(new File([b], %q, {type: 'image/png'})); %s; });
		})()`, c.name, c.event))
		s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && j.image === %q`, prev, c.name), firstLoad)
	}
}

// A model fetched from a URL (same origin here; Hugging Face links are
// https) loads with the download progress, and its config.json is not
// needed when heads are given.
func TestLoadModelURL(t *testing.T) {
	tiny := filepath.Join(repoRoot(), "testdata", "reference", "tiny", "timm.safetensors")
	ts := serve(t, tiny)
	ctx := browser(t, false)
	_, samples := demo(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL)); err != nil {
		t.Fatal(err)
	}
	waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1`, firstLoad)
	eval(t, ctx, fmt.Sprintf(`(() => {
		document.querySelector('.vl-advanced').open = true;
		const h = document.getElementById('vl-heads'); h.value = '2'; h.dispatchEvent(new Event('change', {bubbles: true}));
		const u = document.getElementById('vl-model-url'); u.value = %q; u.dispatchEvent(new Event('input', {bubbles: true}));
		document.getElementById('vl-url-load').click();
	})()`, ts.URL+"/files/timm.safetensors"))
	s := waitState(t, ctx, `d.status === 'ready' && d.model === 'timm.safetensors' && !d.error`, 60*time.Second)
	data, err := os.ReadFile(tiny)
	if err != nil {
		t.Fatal(err)
	}
	m, err := session.LoadModel("timm.safetensors", data, session.LoadOptions{Heads: 2})
	if err != nil {
		t.Fatal(err)
	}
	sameRanks(t, "tiny model from a URL", s.summary(t), native(t, m, samples[0], session.Settings{Target: -1}))
	// An unreachable URL is an error, the model stays.
	eval(t, ctx, `(() => { const u = document.getElementById('vl-model-url'); u.value = 'https://127.0.0.1:1/none.safetensors';
		u.dispatchEvent(new Event('input', {bubbles: true})); document.getElementById('vl-url-load').click(); })()`)
	s = waitState(t, ctx, `(d.error || '').includes('none.safetensors')`, 30*time.Second)
	if s.Model != "timm.safetensors" {
		t.Errorf("model after a failed download: %q", s.Model)
	}
	t.Logf("error shown: %s", s.Error)
}

// A checkpoint picked in the page loads (with a head count given in the
// page), and its ranks are the native ones; a corrupt file is refused with
// an error naming it while the loaded model keeps working.
func TestLoadModelFiles(t *testing.T) {
	ctx, s := openApp(t, false)
	_, samples := demo(t)

	tiny := filepath.Join(repoRoot(), "testdata", "reference", "tiny", "timm.safetensors")
	// Without heads the tiny fixture (dim 16) cannot be read: the page says
	// why, then loads it once heads are given.
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("vl-model-file"), []string{tiny})); err != nil {
		t.Fatal(err)
	}
	s = waitState(t, ctx, `(d.error || '').includes('timm.safetensors') && (d.error || '').includes('Attention heads')`, 30*time.Second)
	t.Logf("error shown: %s", s.Error)
	if strings.Contains(s.Error, "Override") || strings.Contains(s.Error, "Options") {
		t.Errorf("error names a Go identifier: %s", s.Error)
	}
	// The loading options are open on the question, with the counts that
	// divide the width 16 (no head size of 32-128 fits: all of them).
	asked, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`document.querySelector('.vl-advanced').open ?
		[...document.querySelectorAll('#vl-heads-ask .vl-heads-choice')].map(b => b.innerText) : []`))
	if want := []string{"1 (head size 16)", "2 (head size 8)", "4 (head size 4)", "8 (head size 2)", "16 (head size 1)"}; err != nil || !slices.Equal(asked, want) {
		t.Errorf("head counts offered: %q, %v; want %q", asked, err, want)
	}
	screenshot(t, ctx, "model-heads-asked")
	checkAxe(t, ctx, "head count asked")
	// One click on "2" loads it.
	eval(t, ctx, `document.querySelector('#vl-heads-ask .vl-heads-choice[data-heads="2"]').click()`)
	s = waitState(t, ctx, `d.status === 'ready' && d.model === 'timm.safetensors' && !d.error`, 60*time.Second)
	data, err := os.ReadFile(tiny)
	if err != nil {
		t.Fatal(err)
	}
	m, err := session.LoadModel("timm.safetensors", data, session.LoadOptions{Heads: 2})
	if err != nil {
		t.Fatal(err)
	}
	sameRanks(t, "tiny model", s.summary(t), native(t, m, samples[0], session.Settings{Target: -1}))
	screenshot(t, ctx, "model-tiny")
	// Nothing in the tiny checkpoint says how it was preprocessed: the model
	// facts say the preset is only assumed.
	facts, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.vl-facts').innerText`))
	if err != nil || !strings.Contains(facts, "preset assumed: google") {
		t.Errorf("model facts: %q, %v", facts, err)
	}

	broken := filepath.Join(t.TempDir(), "broken.safetensors")
	if err := os.WriteFile(broken, []byte("\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("vl-model-file"), []string{broken})); err != nil {
		t.Fatal(err)
	}
	s = waitState(t, ctx, `(d.error || '').includes('broken.safetensors')`, 30*time.Second)
	t.Logf("error shown: %s", s.Error)
	visible, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('vl-error').innerText`))
	if err != nil || !strings.Contains(visible, "broken.safetensors") {
		t.Errorf("error banner: %q, %v", visible, err)
	}
	screenshot(t, ctx, "model-corrupt")
	// The previous model still analyses new images.
	eval(t, ctx, `document.querySelector('.vl-thumb[data-sample="2"]').click()`)
	s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d`, s.Seq), 60*time.Second)
	if s.Model != "timm.safetensors" {
		t.Fatalf("model after the corrupt file: %q", s.Model)
	}
	sameRanks(t, "tiny model, sample 2", s.summary(t), native(t, m, samples[2], session.Settings{Target: -1}))
}

// A CLIP-style tower picked with its config.json reads classes through a
// head file loaded with "Load class embeddings": its class names, the same
// ranks as the native path with the same head; "use the model's own head"
// goes back. A model with registers shows them as tokens of their own.
func TestLoadHeadFile(t *testing.T) {
	ctx, s := openApp(t, false)
	_, samples := demo(t)
	ref := filepath.Join(repoRoot(), "testdata", "reference")
	clip := filepath.Join(ref, "clip", "timm.safetensors")
	config := filepath.Join(ref, "clip", "config.json")
	head := filepath.Join(ref, "clip", "head.safetensors")
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("vl-model-file"), []string{clip, config})); err != nil {
		t.Fatal(err)
	}
	waitState(t, ctx, `(d.error || '').includes('Attention heads')`, 30*time.Second)
	eval(t, ctx, `document.querySelector('#vl-heads-ask .vl-heads-choice[data-heads="2"]').click()`)
	s = waitState(t, ctx, `d.status === 'ready' && d.model === 'timm.safetensors' && !d.error`, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("vl-head-file"), []string{head})); err != nil {
		t.Fatal(err)
	}
	s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && !!document.getElementById('vl-head-in-use')`, s.Seq), 60*time.Second)
	if s.Error != "" {
		t.Fatalf("error: %s", s.Error)
	}
	read := func(name string) []byte {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	m, err := session.LoadModel("timm.safetensors", read(clip),
		session.LoadOptions{Heads: 2, ConfigJSON: read(config), HeadName: "head.safetensors", HeadData: read(head)})
	if err != nil {
		t.Fatal(err)
	}
	want := native(t, m, samples[0], session.Settings{Target: -1})
	sameRanks(t, "CLIP tower through its head file", s.summary(t), want)
	facts, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.vl-facts').innerText`))
	if err != nil || !strings.Contains(facts, `head.safetensors metadata "classes"`) || !strings.Contains(facts, "quick_gelu") {
		t.Errorf("model facts: %q, %v", facts, err)
	}
	top, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('vl-prediction').innerText`))
	if err != nil || !strings.Contains(top, m.ClassName(want.Predicted)) {
		t.Errorf("top-5 %q lacks the head file's name %q (%v)", top, m.ClassName(want.Predicted), err)
	}
	screenshot(t, ctx, "head-file")
	checkAxe(t, ctx, "class embeddings loaded")
	// Back to the tower's own head: its 12-wide projection.
	eval(t, ctx, `document.querySelector('#vl-head-in-use button').click()`)
	s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && !document.getElementById('vl-head-in-use')`, s.Seq), 60*time.Second)
	if s.Error != "" {
		t.Fatalf("error: %s", s.Error)
	}

	// Registers are tokens of their own kind: named in the facts and
	// inspectable beside [CLS].
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("vl-model-file"), []string{filepath.Join(ref, "ls_reg", "timm.safetensors")})); err != nil {
		t.Fatal(err)
	}
	s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && !document.getElementById('vl-head-in-use')`, s.Seq), 60*time.Second)
	if s.Error != "" {
		t.Fatalf("error: %s", s.Error)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.vl-facts').innerText + ' | ' +
		[...document.querySelectorAll('#vl-patch-info .vl-link')].map(b => b.innerText).join(', ') + ' | ' +
		document.querySelector('#vl-heatmap svg').textContent`))
	if err != nil || !strings.Contains(got, "[CLS] + 2 registers") || !strings.Contains(got, "inspect register 2") ||
		!strings.Contains(got, "token ([CLS], registers, then patches row by row)") {
		t.Errorf("registers: %q, %v", got, err)
	}
}

// After one visit the service worker has everything: with the server gone
// the page still loads and analyses.
func TestOffline(t *testing.T) {
	ts := serve(t)
	ctx := browser(t, false)
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL)); err != nil {
		t.Fatal(err)
	}
	waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1`, firstLoad)
	// Wait until the worker controls the page and has cached app.wasm.
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => {
		if (!navigator.serviceWorker.controller) return false;
		caches.keys().then(ks => Promise.all(ks.map(k => caches.open(k).then(c => c.keys()))))
			.then(all => { window.vlCached = all.flat().some(r => r.url.includes('app.wasm')) &&
				all.flat().some(r => r.url.includes('/web/icon.svg?v=')) &&
				all.flat().some(r => r.url.includes('/web/demo/models/fmnist-vit.safetensors?v=')); });
		return window.vlCached === true;
	})()`, chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(250*time.Millisecond)))
	if err != nil {
		t.Fatalf("service worker never took over (or did not cache app.wasm, the logo and the demo model): %v", err)
	}
	ts.Close()
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	s := waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1`, firstLoad)
	if s.Model != "demo:fmnist-vit" {
		t.Fatalf("offline reload: model %q", s.Model)
	}
	// web/boot.js came from the cache too: it starts the engine's worker.
	if s.Engine != "worker" {
		t.Errorf("offline, the engine runs in %q: want the worker", s.Engine)
	}
	// The header's logo came from the cache too.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => { const l = document.querySelector('.vl-logo');
		return l.complete && l.naturalWidth > 0; })()`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		src, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.vl-logo').src`))
		t.Errorf("logo %s not shown offline: %v", src, err)
	}
	screenshot(t, ctx, "offline")
}

// A deployment elsewhere (the Cloudflare Worker under `wrangler dev`, a
// static host): VITLENS_E2E_URL=http://127.0.0.1:8787/ runs the demo
// check against it.
func TestDeployedURL(t *testing.T) {
	url := os.Getenv("VITLENS_E2E_URL")
	if url == "" {
		t.Skip("set VITLENS_E2E_URL to check a deployment (make workers-check does)")
	}
	if env.skip != "" {
		t.Skip(env.skip)
	}
	ctx := browser(t, false)
	m, samples := demo(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	s := waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1`, firstLoad)
	t.Logf("%s: backend %q; first analysis %.0f ms after navigation", url, s.Backend, s.FirstMS)
	sameRanks(t, "deployed demo", s.summary(t), native(t, m, samples[0], session.Settings{Target: -1}))
	screenshot(t, ctx, "deployed")
}
