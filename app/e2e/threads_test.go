package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
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

// Where the host sends no cross-origin isolation headers (a static host
// that cannot set them), the page works on one thread: the engine in its
// worker, the single-threaded module in its relaxed-SIMD build (Chromium
// has relaxed SIMD; vit/gemm_js.go's newSIMDKernel), the demo's ranks the
// native ones.
func TestWithoutIsolation(t *testing.T) {
	site := serveSite(t, false)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		site.Config.Handler.ServeHTTP(noIsolation{w}, r)
	}))
	t.Cleanup(ts.Close)
	ctx := browser(t, false)
	m, samples := demo(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/?backend=cpu")); err != nil {
		t.Fatal(err)
	}
	s := waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1`, firstLoad)
	isolated, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`self.crossOriginIsolated`))
	if err != nil || isolated {
		t.Fatalf("crossOriginIsolated %v (%v): want false without the headers", isolated, err)
	}
	if s.Engine != "worker" {
		t.Errorf("the engine runs in %q: want the worker", s.Engine)
	}
	if want := "CPU (WebAssembly SIMD with FMA)"; s.Backend != want {
		t.Errorf("backend %q, want %q", s.Backend, want)
	}
	sameRanks(t, "demo without isolation", s.summary(t), native(t, m, samples[0], session.Settings{Target: -1}))
	t.Logf("without isolation: %s, first analysis %.0f ms after navigation", s.Backend, s.FirstMS)
}

// noIsolation drops the cross-origin isolation headers from a response.
type noIsolation struct{ http.ResponseWriter }

func (w noIsolation) drop() {
	w.Header().Del("Cross-Origin-Opener-Policy")
	w.Header().Del("Cross-Origin-Embedder-Policy")
}

func (w noIsolation) WriteHeader(code int) {
	w.drop()
	w.ResponseWriter.WriteHeader(code)
}

func (w noIsolation) Write(b []byte) (int, error) {
	w.drop()
	return w.ResponseWriter.Write(b)
}
