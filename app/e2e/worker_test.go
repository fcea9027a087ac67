package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"vitlens/app/session"
	"vitlens/vit"
	"vitlens/vit/checkpoint"
	"vitlens/vit/memory"
	"vitlens/vit/vittest"
)

// tiny16 is ViT-Ti/16's shape (timm vit_tiny_patch16_224, 5.7 M parameters):
// an analysis long enough on the CPU path (a second or more per block here)
// to watch its progress and cancel it.
var tiny16 = vit.Config{ImageSize: 224, PatchSize: 16, Channels: 3, Dim: 192, Depth: 12, Heads: 3, MLPDim: 768,
	Classes: 1000, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}

var progressBlock = regexp.MustCompile(`block (\d+) of (\d+)`)

// The page computes in the engine's worker; a long analysis shows its
// progress block by block, and Cancel stops it, leaving the last analysis
// on screen and the page usable. Also reports the main thread's longest
// task while the model loads and is analysed (figures, not checks).
func TestProgressAndCancel(t *testing.T) {
	ts := serve(t)
	ctx := browser(t, false)
	// The scalar matmul (?gemm=scalar): with the SIMD one a Ti/16 analysis
	// is over in half a second, too soon to watch its blocks and cancel it.
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/?backend=cpu&gemm=scalar")); err != nil {
		t.Fatal(err)
	}
	s := waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1`, firstLoad)
	if s.Backend != "CPU (WebAssembly)" {
		t.Errorf("?gemm=scalar: the engine runs on %q", s.Backend)
	}
	if s.Engine != "worker" {
		t.Fatalf("the engine runs in %q: want the worker", s.Engine)
	}
	demoSeq := s.Seq

	path := writeTiny16(t)
	clearLongTasks(t, ctx)
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("vl-model-file"), []string{path})); err != nil {
		t.Fatal(err)
	}
	// Progress: the block count rises while the analysis runs.
	var blocks []int
	deadline := time.Now().Add(5 * time.Minute)
	for len(blocks) < 3 && time.Now().Before(deadline) {
		text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById('vl-progress') || {}).textContent || ''`))
		if err != nil {
			t.Fatal(err)
		}
		if m := progressBlock.FindStringSubmatch(text); m != nil {
			b, _ := strconv.Atoi(m[1])
			if m[2] != "12" {
				t.Fatalf("progress %q: want blocks of 12", text)
			}
			if len(blocks) == 0 || b != blocks[len(blocks)-1] {
				blocks = append(blocks, b)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("progress seen at blocks %v", blocks)
	if len(blocks) < 3 {
		t.Fatalf("progress showed blocks %v: want three or more", blocks)
	}
	for i := 1; i < len(blocks); i++ {
		if blocks[i] <= blocks[i-1] {
			t.Errorf("progress went from block %d to %d", blocks[i-1], blocks[i])
		}
	}
	loadTask := longestTask(t, ctx, "")
	t.Logf("long tasks while the Ti/16 model loads: %s", longTaskList(t, ctx))
	// Cancel: the analysis stops (the new model has no analysis yet, so
	// the page waits for an image).
	clicked := time.Now()
	eval(t, ctx, `document.getElementById('vl-cancel').click()`)
	s = waitState(t, ctx, `d.status === 'ready' && d.notice === 'Analysis cancelled.' && !d.progress`, time.Minute)
	t.Logf("cancelled %v after the click; model %q, seq %d", time.Since(clicked).Round(time.Millisecond), s.Model, s.Seq)
	if s.Error != "" {
		t.Errorf("after the cancel: error %q", s.Error)
	}
	gone, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!document.getElementById('vl-cancel')`))
	if err != nil || !gone {
		t.Errorf("the Cancel button is still there")
	}
	// Usable: another sample is analysed to the end, on the new model.
	clearLongTasks(t, ctx)
	tr := startTrace(t, ctx) // each task's CPU time: wall time here is mostly waiting for a core
	eval(t, ctx, `document.querySelector('.vl-thumb[data-sample="3"]').click()`)
	s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && d.model.startsWith('vit-ti16')`, demoSeq), 10*time.Minute)
	analysisTask := longestTask(t, ctx, "")
	cpu, wall := tr.busiestTask(t, ctx, "")
	t.Logf("Ti/16: the main-thread task with the most CPU while it is analysed and drawn: %.0f ms of CPU (%.0f ms wall)", cpu, wall)
	t.Logf("Ti/16-sized model on the CPU in the worker: analysis %.0f ms; longest main-thread task while loading it %.0f ms (%d over 50 ms), while analysing %.0f ms (%d)",
		s.summary(t).ElapsedMS, loadTask.MS, loadTask.Count, analysisTask.MS, analysisTask.Count)
	t.Logf("long tasks while it is analysed and drawn: %s", longTaskList(t, ctx))
	screenshot(t, ctx, "worker-ti16")
}

// Without a worker (?worker=off, as in a browser that has none) the page
// runs the same engine itself and gets the native ranks; the tools the
// page asks the engine for (memories' value classes, a patching cell, the
// activations export) work there too.
func TestInPageEngine(t *testing.T) {
	ts := serve(t)
	ctx := browser(t, false)
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/?worker=off")); err != nil {
		t.Fatal(err)
	}
	s := waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1`, firstLoad)
	if s.Engine != "page" {
		t.Fatalf("the engine runs in %q: want the page", s.Engine)
	}
	m, samples := demo(t)
	sameRanks(t, "demo in the page", s.summary(t), native(t, m, samples[0], session.Settings{Target: -1}))
	eval(t, ctx, `document.querySelector('.vl-thumb[data-sample="4"]').click()`)
	s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d`, s.Seq), firstLoad)
	sameRanks(t, "sample 4 in the page", s.summary(t), native(t, m, samples[4], session.Settings{Target: -1}))

	// The memories card lists [CLS]'s memories of the last block with the
	// classes their values promote, which the engine computed.
	c := m.Model.Config
	want := nativeAnalysis(t, m, samples[4], session.Settings{Target: -1})
	var tags []string
	for _, l := range []memory.Layer{memory.MLP, memory.Attn} {
		mems, err := want.Model.Memories(want.BaseMemories, c.Depth-1, l, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, mem := range mems {
			for _, k := range mem.Classes {
				tags = append(tags, m.ClassName(int(k)))
			}
		}
	}
	got, err := chromedp.Run(ctx, chromedp.Poll[[]string](fmt.Sprintf(`(() => {
		const tags = [...document.querySelectorAll('#vl-memories .vl-tag')].map(e => e.textContent);
		return tags.length === %d && !document.querySelector('#vl-memories .vl-mem-wait') && tags; })()`, len(tags)),
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil || !slices.Equal(got, tags) {
		t.Errorf("memories card in the page: classes %q, want %q (%v)", got, tags, err)
	}
	selectValue(t, ctx, "vl-corrupt", "s1")
	selectValue(t, ctx, "vl-patch-metric", "logit")
	checkHeadCell(t, ctx, m, want, samples[1])
	recordDownloads(t, ctx)
	eval(t, ctx, `document.querySelector('#vl-dla .vl-chip[data-export="activations"]').click()`)
	if d := waitDownloads(t, ctx, 1)[0]; !strings.HasSuffix(d.Name, "-activations.safetensors") || !strings.Contains(d.Text, `"images"`) {
		t.Errorf("activations download in the page %q: header %.200q", d.Name, d.Text)
	}
}

// writeTiny16 writes a Ti/16-sized model with splitmix weights (the
// fixtures' deterministic random numbers) for the file input, and returns
// its path.
func writeTiny16(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vit-ti16-splitmix.safetensors")
	data, err := checkpoint.EncodeSafetensors(vittest.SplitmixTensors(tiny16), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Where web/boot.js does not get app.wasm's compiled module (here a script
// that runs first hides it from go-app's loader), the page starts the
// engine's worker when its Go asks, and the worker fetches and compiles
// app.wasm itself: still the worker, still the native ranks.
func TestWorkerCompilesItself(t *testing.T) {
	ts := serve(t)
	ctx := browser(t, false)
	hide := `(() => { const streaming = WebAssembly.instantiateStreaming, instantiate = WebAssembly.instantiate;
		WebAssembly.instantiateStreaming = async (s, i) => ({instance: (await streaming.call(WebAssembly, s, i)).instance});
		WebAssembly.instantiate = async (s, i) => { const r = await instantiate.call(WebAssembly, s, i);
			return r instanceof WebAssembly.Instance ? r : {instance: r.instance}; }; })()`
	if err := chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: hide})
		return chromedp.Void{}, err
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/?backend=cpu")); err != nil {
		t.Fatal(err)
	}
	s := waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1`, firstLoad)
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('vl-state').dataset.engine + ' ' +
		performance.getEntriesByName('vl-worker-compiled').length + ' ' + performance.getEntriesByName('vl-wasm-compiled').length`))
	if err != nil || got != "worker 1 0" {
		t.Fatalf("engine, the worker's own compile and the page's module kept: %q (%v); want the worker, compiling app.wasm itself", got, err)
	}
	m, samples := demo(t)
	sameRanks(t, "demo in a worker that compiled app.wasm itself", s.summary(t), native(t, m, samples[0], session.Settings{Target: -1}))
}
