package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// onnxruntime-web, the browser peer of the app's CPU path, installed with
// npm on first use into the git-ignored node_modules beside axe-core.
const ortWebVersion = "1.30.0"

// ortBenchPage times an ONNX model in onnxruntime-web's WASM backend: the
// best of reps runs on random pixels after a warm-up, with threads threads
// (more than one needs cross-origin isolation, which /bench/ sends).
const ortBenchPage = `<!doctype html><meta charset="utf-8"><title>ort bench</title>
<script type="module">
import * as ort from "/bench/ort/ort.wasm.min.mjs";
const q = new URLSearchParams(location.search);
const threads = +q.get("threads"), reps = +q.get("reps");
ort.env.wasm.wasmPaths = "/bench/ort/";
ort.env.wasm.numThreads = threads;
ort.env.wasm.proxy = false;
try {
	const s = await ort.InferenceSession.create("/bench/model.onnx", {executionProviders: ["wasm"], graphOptimizationLevel: "all"});
	const px = new Float32Array(3 * 224 * 224).map(() => Math.random() * 2 - 1);
	const feeds = {pixels: new ort.Tensor("float32", px, [1, 3, 224, 224])};
	await s.run(feeds);
	let best = Infinity;
	for (let i = 0; i < reps; i++) {
		const t = performance.now();
		await s.run(feeds);
		best = Math.min(best, performance.now() - t);
	}
	window.vlBench = {ms: best, isolated: crossOriginIsolated, threads: ort.env.wasm.numThreads};
} catch (e) {
	window.vlBench = {error: String(e)};
}
</script>`

// goBenchPage runs a Go test binary built for js/wasm (package vit's
// BenchmarkForward: the app's pure-Go forward) with the arguments in the
// query, collecting what it prints. It runs in a dedicated worker, as the
// app's engine does, so that the matmul's helper threads may start
// (VITLENS_THREADS from the query's threads, VITLENS_RELAXED_SIMD from its
// relaxed).
const goBenchPage = `<!doctype html><meta charset="utf-8"><title>go bench</title>
<script>
window.vlOut = [];
const w = new Worker("/bench/go-worker.js" + location.search);
w.onmessage = (e) => { if (e.data.done) window.vlDone = true; else window.vlOut.push(e.data.line); };
</script>`

const goBenchWorker = `importScripts("/bench/wasm_exec.js");
const q = new URLSearchParams(location.search);
console.log = (...a) => postMessage({line: a.join(" ")});
const go = new Go();
go.argv = ["vit.test", ...q.getAll("arg")];
go.env = {VITLENS_THREADS: q.get("threads") || "", VITLENS_RELAXED_SIMD: q.get("relaxed") || ""};
(async () => {
	const r = await WebAssembly.instantiateStreaming(fetch("/bench/vit.test.wasm"), go.importObject);
	await go.run(r.instance);
	postMessage({done: true});
})();
`

// TestPerfORT compares the app's CPU path with onnxruntime-web's WASM
// backend on ViT-B/16 in the same headless Chromium: the forward alone
// (package vit's BenchmarkForward built for js/wasm against torchvision's
// vit_b_16 exported by tools/bench/export_onnx.py, random weights both) and
// the app's full analysis (forward, lens on every site, memories,
// explanation maps: a B/16-sized model loaded through the file input) per
// image, at one thread and at all (onnxruntime-web's threads; the app's
// matmul helper workers, vit/gemm_js.go; the full analysis on all).
// Figures and ratios, not checks: VITLENS_E2E_PERF=1 (=forward: the
// forwards only).
func TestPerfORT(t *testing.T) {
	if os.Getenv("VITLENS_E2E_PERF") == "" {
		t.Skip("set VITLENS_E2E_PERF=1 to compare with onnxruntime-web in the browser")
	}
	if env.skip != "" {
		t.Skip(env.skip)
	}
	onnx := filepath.Join(repoRoot(), "tools", "bench", "models", "vit_b_16.onnx")
	if _, err := os.Stat(onnx); err != nil {
		t.Skipf("%s is missing: run /usr/bin/python3 tools/bench/export_onnx.py", onnx)
	}
	ortDir := filepath.Join(repoRoot(), "app", "e2e", "node_modules", "onnxruntime-web", "dist")
	if _, err := os.Stat(filepath.Join(ortDir, "ort.wasm.min.mjs")); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			t.Skip("onnxruntime-web is not installed and npm is missing")
		}
		cmd := exec.Command(npm, "install", "--no-save", "--ignore-scripts", "--no-audit", "--no-fund",
			"--prefix", filepath.Join(repoRoot(), "app", "e2e"), "onnxruntime-web@"+ortWebVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("installing onnxruntime-web@%s failed: %v\n%s", ortWebVersion, err, out)
		}
	}
	tmp := t.TempDir()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "test", "-c", "-trimpath", "-o", filepath.Join(tmp, "vit.test.wasm"), "./vit")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building package vit's tests for js/wasm: %v\n%s", err, out)
	}
	bench := http.NewServeMux()
	page := func(html string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, html)
		}
	}
	bench.HandleFunc("/bench/ort.html", page(ortBenchPage))
	bench.HandleFunc("/bench/go.html", page(goBenchPage))
	bench.HandleFunc("/bench/go-worker.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		fmt.Fprint(w, goBenchWorker)
	})
	// The matmul's helper threads (vit/gemm_js.go) load their script from
	// the app's path.
	bench.HandleFunc("/web/gemm-worker.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(repoRoot(), "public", "web", "gemm-worker.js"))
	})
	bench.Handle("/bench/ort/", http.StripPrefix("/bench/ort/", http.FileServer(http.Dir(ortDir))))
	for name, path := range map[string]string{"model.onnx": onnx, "vit.test.wasm": filepath.Join(tmp, "vit.test.wasm"),
		"wasm_exec.js": filepath.Join(runtime.GOROOT(), "lib", "wasm", "wasm_exec.js")} {
		bench.HandleFunc("/bench/"+name, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Cross-origin isolation, as the app's own server sends it:
		// onnxruntime-web's threads share memory.
		w.Header().Set("Cross-Origin-Opener-Policy", "same-origin")
		w.Header().Set("Cross-Origin-Embedder-Policy", "require-corp")
		bench.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)

	ctx := browser(t, false)
	type ortResult struct {
		MS       float64 `json:"ms"`
		Isolated bool    `json:"isolated"`
		Threads  int     `json:"threads"`
		Error    string  `json:"error"`
	}
	all, err := chromedp.Run(ctx, chromedp.Evaluate[int](`navigator.hardwareConcurrency`))
	if err != nil {
		t.Fatal(err)
	}
	ortMS := map[int]float64{}
	for _, threads := range []int{1, all} {
		if _, ok := ortMS[threads]; ok {
			continue
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/bench/ort.html?threads=%d&reps=3", ts.URL, threads))); err != nil {
			t.Fatal(err)
		}
		r, err := chromedp.Run(ctx, chromedp.Poll[ortResult](`window.vlBench`, chromedp.WithPollingTimeout(10*time.Minute)))
		if err != nil || r.Error != "" {
			t.Fatalf("onnxruntime-web, %d threads: %v %s", threads, err, r.Error)
		}
		t.Logf("onnxruntime-web %s wasm, %d threads (cross-origin isolated: %v): forward %.0f ms per image (best of 3)",
			ortWebVersion, r.Threads, r.Isolated, r.MS)
		ortMS[threads] = r.MS
	}

	// The app's forward: BenchmarkForward/B16/batch1 in the same browser,
	// in a worker, on one thread and on all, in the module the app loads
	// (relaxed SIMD, with its fused multiply-add) and in the simd128 one
	// (?relaxed=off, the browsers without relaxed SIMD).
	goMS, simd128MS := map[int]float64{}, map[int]float64{}
	for _, threads := range []int{1, all} {
		if _, ok := goMS[threads]; ok {
			continue
		}
		for _, relaxed := range []string{"", "off"} {
			args := fmt.Sprintf("threads=%d&relaxed=%s&arg=-test.run=%%5E%%24&arg=-test.bench=%%5EBenchmarkForward%%24%%2F%%5EB16%%24%%2F%%5Ebatch1%%24&arg=-test.benchtime=2x", threads, relaxed)
			if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/bench/go.html?"+args)); err != nil {
				t.Fatal(err)
			}
			if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.vlDone === true`, chromedp.WithPollingTimeout(15*time.Minute))); err != nil {
				t.Fatalf("Go benchmark in the browser: %v", err)
			}
			out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.vlOut.join("\n")`))
			if err != nil {
				t.Fatal(err)
			}
			m := regexp.MustCompile(`([0-9.]+) ms/image`).FindStringSubmatch(out)
			used := regexp.MustCompile(`([0-9.]+) gemm-threads`).FindStringSubmatch(out)
			fma := regexp.MustCompile(`([0-9.]+) relaxed-simd`).FindStringSubmatch(out)
			if m == nil || used == nil || fma == nil {
				t.Fatalf("no ms/image, gemm-threads and relaxed-simd in the Go benchmark's output:\n%s", out)
			}
			ms, _ := strconv.ParseFloat(m[1], 64)
			// The module that ran, as the benchmark reports it.
			module := "simd128 module"
			if fma[1] != "0" {
				module = "relaxed-SIMD module (fused multiply-add)"
			}
			if relaxed == "off" {
				simd128MS[threads] = ms
				module += " (?relaxed=off)"
				if fma[1] != "0" {
					t.Errorf("?relaxed=off ran the relaxed-SIMD module")
				}
			} else {
				goMS[threads] = ms
			}
			t.Logf("app's CPU path (js/wasm in a worker, matmul in the WebAssembly %s on %s of %d thread(s)): forward %.0f ms per image", module, strings.TrimSuffix(used[1], ".000"), threads, ms)
		}
	}
	if os.Getenv("VITLENS_E2E_PERF") == "forward" {
		for _, threads := range []int{1, all} {
			t.Logf("%d thread(s): onnxruntime-web forward %.0f ms; app forward %.0f ms (%.2fx), in the simd128 module %.0f ms (%.2fx)",
				threads, ortMS[threads], goMS[threads], goMS[threads]/ortMS[threads], simd128MS[threads], simd128MS[threads]/ortMS[threads])
		}
		return // VITLENS_E2E_PERF=forward: the forwards only
	}

	// The app's full analysis of a B/16-sized model on the CPU path, at one
	// thread and at all: the lens on every site with attention maps and
	// memory coefficients, DLA and the explanation maps (?explain=1 asks
	// for them with the analysis, as for models under 5 M parameters; a
	// click away otherwise), from the click on an image until the page is
	// ready again (the lens part alone is the page's elapsed time): the
	// best of three images after the upload's own analysis, as
	// onnxruntime-web's is the best of three runs after a warm-up.
	app := serve(t)
	model := filepath.Join(tmp, "vit-b16-splitmix.safetensors")
	writeB16(t, model)
	fullMS, lensMS, allMS := map[int]float64{}, map[int]float64{}, map[int][]string{}
	for _, threads := range []int{1, all} {
		if _, ok := fullMS[threads]; ok {
			continue
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/?backend=cpu&explain=1&threads=%d", app.URL, threads))); err != nil {
			t.Fatal(err)
		}
		s := waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1`, 3*firstLoad)
		if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("vl-model-file"), []string{model})); err != nil {
			t.Fatal(err)
		}
		s = waitState(t, ctx, `d.status === 'ready' && d.model.startsWith('vit-b16')`, 15*time.Minute)
		// VITLENS_E2E_TRACE=f: the browser's trace of this analysis, with
		// the sampling profiler's (every thread's stacks), in f.Nthreads.json.
		var tr *mainThreadTrace
		if traceFile != "" {
			tr = startTrace(t, ctx)
			tr.file = fmt.Sprintf("%s.%dthreads.json", strings.TrimSuffix(traceFile, ".json"), threads)
		}
		fullMS[threads] = math.Inf(1)
		for _, sample := range []int{3, 4, 5} {
			start := time.Now()
			eval(t, ctx, fmt.Sprintf(`window.vlClick = performance.now(); document.querySelector('.vl-thumb[data-sample="%d"]').click()`, sample))
			s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d`, s.Seq), 15*time.Minute)
			ms := float64(time.Since(start).Microseconds()) / 1000
			if ms < fullMS[threads] {
				fullMS[threads], lensMS[threads] = ms, s.summary(t).ElapsedMS
			}
			allMS[threads] = append(allMS[threads], fmt.Sprintf("%.0f", ms))
			t.Logf("%d thread(s), sample %d, where the full analysis's time goes: %s", threads, sample, analysisSteps(t, ctx))
			// The page is ready once the maps are drawn.
			if maps, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const e = document.getElementById('vl-explain');
				return e ? e.innerText : 'no #vl-explain'; })()`)); err != nil || !strings.Contains(maps, "Computed on the CPU in") {
				t.Fatalf("%d thread(s): the explanation maps did not come with the analysis (%v): %.400q", threads, err, maps)
			}
			if tr != nil { // the first image's
				tr.end(t, ctx)
				tr = nil
			}
		}
		t.Logf("app's CPU path, %s: full analysis with the explanation maps %.0f ms per image (best of %s; the lens part %.0f ms)",
			s.Backend, fullMS[threads], strings.Join(allMS[threads], ", "), lensMS[threads])
	}

	var rows []string
	for _, threads := range []int{1, all} {
		rows = append(rows, fmt.Sprintf("%d thread(s): onnxruntime-web forward %.0f ms; app forward %.0f ms (%.2fx, goal <= 1.5x; in the simd128 module %.0f ms, %.2fx); app full analysis with the maps %.0f ms (best of %s: %.2fx its forward, goal <= 3x; lens part %.0f ms)",
			threads, ortMS[threads], goMS[threads], goMS[threads]/ortMS[threads], simd128MS[threads], simd128MS[threads]/ortMS[threads], fullMS[threads], strings.Join(allMS[threads], ", "), fullMS[threads]/ortMS[threads], lensMS[threads]))
		if all == 1 {
			break
		}
	}
	t.Logf("ViT-B/16 per image in Chromium:\n\t%s", strings.Join(rows, "\n\t"))
}

// analysisSteps says where the time of the last analysis went, from the
// click (window.vlClick) until its views were drawn, in ms, read off the
// page's performance timeline: the request queued and sent (the page's
// vl-analysis mark, vl-encode-4, the worker's vl-worker-handle-4), the
// worker's lens (app/engine_js.go posts vl-worker-lens, and
// vl-worker-answer-4 once the answer is encoded), the answer's transfer to
// the page and decode (vl-decode-4), and the render (vl-render-upper and
// the vl-render-step-N that reveal the views one by one, with the pauses
// between them that let the browser paint); meanwhile DLA and the
// explanation maps (the page's KindDerive, vl-worker-handle-15 to
// vl-worker-dla and -explain), their answer (to vl-decode-15) and their
// render (vl-render-derived).
func analysisSteps(t *testing.T, ctx context.Context) string {
	t.Helper()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const last = name => { const e = performance.getEntriesByName(name); return e.length ? e[e.length - 1] : null; };
		const at = name => { const e = last(name); return e ? e.startTime : NaN; };
		const end = name => { const e = last(name); return e ? e.startTime + e.duration : NaN; };
		const steps = performance.getEntriesByType('measure').filter(e => e.name.startsWith('vl-render-step-') && e.startTime >= at('vl-analysed'));
		const stepsMS = steps.reduce((sum, e) => sum + e.duration, 0);
		const ready = steps.length ? steps[steps.length - 1].startTime + steps[steps.length - 1].duration : NaN;
		const f = x => isNaN(x) ? '-' : Math.round(x);
		const parts = [
			['to the worker (queued, encoded, sent)', at('vl-worker-handle-4') - window.vlClick],
			['lens (forward, readouts of every site, attention maps, top memories)', at('vl-worker-lens') - at('vl-worker-handle-4')],
			['answer encoded', at('vl-worker-answer-4') - at('vl-worker-lens')],
			['transfer to the page', at('vl-decode-4') - at('vl-worker-answer-4')],
			['decode', last('vl-decode-4') ? last('vl-decode-4').duration : NaN],
			['to the first render', at('vl-render-upper') - end('vl-decode-4')],
			['first render', last('vl-render-upper') ? last('vl-render-upper').duration : NaN],
			[steps.length + ' render steps (' + steps.map(e => Math.round(e.duration)).join(' + ') + ')', stepsMS],
			['pauses between them', ready - end('vl-render-upper') - stepsMS],
		];
		// DLA and the explanation maps follow the analysis's answer (the
		// page asks for them at once, KindDerive 15) while the page draws it.
		const derived = [
			['DLA', at('vl-worker-dla') - at('vl-worker-handle-15')],
			['explanation maps', at('vl-worker-explain') - at('vl-worker-dla')],
			['their answer to the page', end('vl-decode-15') - at('vl-worker-explain')],
			['drawn', last('vl-render-derived') ? last('vl-render-derived').duration : NaN],
		];
		const drawn = Math.max(ready, end('vl-render-derived'));
		return parts.map(([name, ms]) => name + ' ' + f(ms)).join(', ') + '; meanwhile ' +
			derived.map(([name, ms]) => name + ' ' + f(ms)).join(', ') + '; every view drawn ' + f(drawn - window.vlClick) + ' ms after the click'; })()`))
	if err != nil {
		t.Fatalf("reading the analysis's timeline: %v", err)
	}
	return text
}
