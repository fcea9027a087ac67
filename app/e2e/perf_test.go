package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"vitlens/vit/checkpoint"
	"vitlens/vit/vittest"
)

// TestPerfB16 measures a ViT-B/16-sized model (random splitmix weights,
// 346 MB) in the page: loading it, and analysing two images, on the CPU
// fallback and on WebGPU. A measurement, not a check: it runs only with
// VITLENS_E2E_PERF=1 (cpu, webgpu or both via VITLENS_E2E_PERF_BACKENDS).
func TestPerfB16(t *testing.T) {
	if os.Getenv("VITLENS_E2E_PERF") == "" {
		t.Skip("set VITLENS_E2E_PERF=1 to measure a B/16-sized model in the browser")
	}
	ts := serve(t)
	path := filepath.Join(t.TempDir(), "vit-b16-splitmix.safetensors")
	writeB16(t, path)
	backends := os.Getenv("VITLENS_E2E_PERF_BACKENDS")
	if backends == "" {
		backends = "cpu,webgpu"
	}
	for _, backend := range []string{"cpu", "webgpu"} {
		if !containsWord(backends, backend) {
			continue
		}
		t.Run(backend, func(t *testing.T) {
			ctx := browser(t, backend == "webgpu")
			if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL)); err != nil {
				t.Fatal(err)
			}
			s := waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1`, firstLoad)
			t.Logf("%s: demo first analysis %.0f ms after navigation, %.1f ms", s.Backend, s.FirstMS, s.summary(t).ElapsedMS)
			clearLongTasks(t, ctx)
			start := time.Now()
			if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("vl-model-file"), []string{path})); err != nil {
				t.Fatal(err)
			}
			s = waitState(t, ctx, `d.status === 'ready' && d.model.startsWith('vit-b16')`, 15*time.Minute)
			t.Logf("%s B/16: loaded and first analysis in %v (analysis %.0f ms)", s.Backend, time.Since(start).Round(time.Millisecond), s.summary(t).ElapsedMS)
			// The main thread meanwhile: the file read and sent to the
			// engine, the model back, the analysis drawn.
			lt := longestTask(t, ctx, "")
			t.Logf("%s B/16: longest main-thread task from the file's pick to its first analysis drawn %.0f ms (%d over 50 ms); long tasks %s",
				s.Backend, lt.MS, lt.Count, longTaskList(t, ctx))
			screenshot(t, ctx, "perf-b16-"+backend)
			eval(t, ctx, `document.querySelector('.vl-thumb[data-sample="3"]').click()`)
			s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d`, s.Seq), 15*time.Minute)
			t.Logf("%s B/16: second image, analysis %.0f ms", s.Backend, s.summary(t).ElapsedMS)
		})
	}
}

// writeB16 writes a B/16-sized model with random splitmix weights (346 MB).
func writeB16(t *testing.T, path string) {
	t.Helper()
	data, err := checkpoint.EncodeSafetensors(vittest.SplitmixTensors(vittest.B16), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func containsWord(list, w string) bool {
	for i := 0; i+len(w) <= len(list); i++ {
		if list[i:i+len(w)] == w && (i == 0 || list[i-1] == ',') && (i+len(w) == len(list) || list[i+len(w)] == ',') {
			return true
		}
	}
	return false
}
