package e2e

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"vitlens/app/session"
)

// The page is cross-origin isolated and its engine runs in a worker, so
// the CPU path's matmul runs on navigator.hardwareConcurrency threads
// (vit/gemm_js.go's helper workers, public/web/gemm-worker.js). Each
// product's chunks are the single-threaded module's loops on disjoint
// columns, so the analysis of a Ti/16-sized model (12 to 48 panels a
// product) must equal the one with ?threads=1 (the same build with no
// helper: the caller takes every chunk) exactly, and the demo's the native
// ranks.
func TestThreadedMatMul(t *testing.T) {
	ts := serve(t)
	ctx := browser(t, false)
	path := writeTiny16(t)
	m, samples := demo(t)
	var summaries []session.Summary
	for _, query := range []string{"/?backend=cpu", "/?backend=cpu&threads=1"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+query)); err != nil {
			t.Fatal(err)
		}
		s := waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1`, firstLoad)
		cores, err := chromedp.Run(ctx, chromedp.Evaluate[int](`navigator.hardwareConcurrency`))
		if err != nil {
			t.Fatal(err)
		}
		isolated, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`self.crossOriginIsolated`))
		if err != nil || !isolated {
			t.Fatalf("the page is not cross-origin isolated (%v): no shared memory for threads", err)
		}
		sameRanks(t, "demo "+query, s.summary(t), native(t, m, samples[0], session.Settings{Target: -1}))
		if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("vl-model-file"), []string{path})); err != nil {
			t.Fatal(err)
		}
		s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d && d.model.startsWith('vit-ti16')`, s.Seq), 10*time.Minute)
		// The label counts the helpers that started (after the first
		// analysis, they have had the demo's time to).
		// Chromium has relaxed SIMD: the threaded module with FMA loads.
		want := "CPU (WebAssembly SIMD with FMA)"
		if cores > 1 && !strings.Contains(query, "threads=1") {
			want = fmt.Sprintf("CPU (WebAssembly SIMD with FMA, %d threads)", cores)
		}
		if s.Backend != want {
			t.Errorf("%s on %d cores: backend %q, want %q", query, cores, s.Backend, want)
		}
		sum := s.summary(t)
		t.Logf("%s: %s, Ti/16-sized model: analysis %.0f ms", query, s.Backend, sum.ElapsedMS)
		sum.ElapsedMS = 0
		summaries = append(summaries, sum)
	}
	if !reflect.DeepEqual(summaries[0], summaries[1]) {
		sameRanks(t, "threads against one thread", summaries[0], summaries[1])
		t.Errorf("the analysis on several threads differs from the one on one thread")
	}
}
