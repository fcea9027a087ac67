package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"vitlens/app/pwa"
	"vitlens/app/session"
	"vitlens/public"
	"vitlens/vit"
	"vitlens/vit/lens"
)

// env is what TestMain prepares once: app.wasm built from this tree, the web
// folder around it, and a headless Chromium.
var env struct {
	chromium string
	web      string // folder with app.wasm and the assets
	shots    string // where screenshots go
	skip     string // why the browser tests cannot run
	wasmMS   float64
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		tmp, err := os.MkdirTemp("", "vitlens-e2e-")
		if err != nil {
			fmt.Println(err)
			return 1
		}
		defer os.RemoveAll(tmp)
		prepare(tmp)
		return m.Run()
	}()
	os.Exit(code)
}

func repoRoot() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..")
}

func prepare(tmp string) {
	if testing.Short() {
		env.skip = "browser tests skipped in -short mode"
		return
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			env.chromium = p
			break
		}
	}
	if env.chromium == "" {
		env.skip = "no Chromium found: apt-get install -y chromium (make test installs it)"
		return
	}
	env.web = filepath.Join(tmp, "web")
	if err := os.MkdirAll(env.web, 0o755); err != nil {
		env.skip = err.Error()
		return
	}
	// Build app.wasm from this tree, so the test never runs a stale one.
	start := time.Now()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	// The flags of `make wasm`, so the two share Go's build cache; with
	// its symbols where a trace is asked for (VITLENS_E2E_TRACE), so that
	// the profiler's stacks name Go's functions.
	ldflags := "-ldflags=-s -w"
	if traceFile != "" {
		ldflags = "-ldflags="
	}
	cmd := exec.Command(goBin, "build", "-trimpath", ldflags, "-o", filepath.Join(env.web, "app.wasm"), "./app/wasm")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		env.skip = fmt.Sprintf("building app.wasm failed: %v\n%s", err, out)
		return
	}
	env.wasmMS = float64(time.Since(start).Milliseconds())
	assets := filepath.Join(repoRoot(), "public", "web")
	entries, err := os.ReadDir(assets)
	if err != nil {
		env.skip = err.Error()
		return
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".go") || e.Name() == "app.wasm" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(assets, e.Name()))
		if err == nil {
			err = os.WriteFile(filepath.Join(env.web, e.Name()), data, 0o644)
		}
		if err != nil {
			env.skip = err.Error()
			return
		}
	}
	env.shots = os.Getenv("VITLENS_E2E_SHOTS")
	if env.shots == "" {
		env.shots = filepath.Join(repoRoot(), "build", "e2e") // gitignored
	}
	if err := os.MkdirAll(env.shots, 0o755); err != nil {
		env.skip = err.Error()
	}
}

// serve starts the app's handler on a loopback port; extra files are served
// beside it from the same origin (the page's CSP allows only https and its
// own origin).
func serve(t *testing.T, extra ...string) *httptest.Server {
	t.Helper()
	return serveSite(t, false, extra...)
}

// serveSite is serve, waiting first when compressed is set until the
// brotli and gzip forms of the assets are ready, so that what the page
// moves over the network is what a long-running server sends.
func serveSite(t *testing.T, compressed bool, extra ...string) *httptest.Server {
	t.Helper()
	if env.skip != "" {
		t.Skip(env.skip)
	}
	s, err := pwa.New(os.DirFS(env.web), nil)
	if err != nil {
		t.Fatal(err)
	}
	if compressed {
		s.WaitCompressed()
	}
	mux := http.NewServeMux()
	mux.Handle("/", s)
	for _, path := range extra {
		mux.HandleFunc("/files/"+filepath.Base(path), func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, path)
		})
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Lock()
		served.paths = append(served.paths, r.URL.Path)
		served.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// served lists the paths the test servers answered, from the page and its
// workers alike (a worker's fetches are not in the page's resource timing).
var served struct {
	sync.Mutex
	paths []string
}

// wasServed reports whether a path containing part was requested.
func wasServed(part string) bool {
	served.Lock()
	defer served.Unlock()
	for _, p := range served.paths {
		if strings.Contains(p, part) {
			return true
		}
	}
	return false
}

// browser starts a fresh headless Chromium (own profile, so no cache or
// service worker carries over), with or without WebGPU.
func browser(t *testing.T, webgpu bool) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(env.chromium), chromedp.Headless, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 1100),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
	}
	if webgpu {
		// SwiftShader is a CPU adapter, blocklisted unless this is set.
		opts = append(opts, chromedp.Flag("enable-unsafe-webgpu", true))
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, observeLongTasks); err != nil {
		t.Fatalf("starting %s: %v", env.chromium, err)
	}
	// Every console message is watched: a CSP violation or a Go panic fails
	// the test even when the page looks fine.
	var mu sync.Mutex
	var bad []string
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			text := m.String()
			if strings.Contains(text, "Content Security Policy") || strings.Contains(text, "Refused to") ||
				strings.Contains(text, "panic:") || strings.Contains(text, "Go program has already exited") {
				mu.Lock()
				bad = append(bad, text)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bad {
			t.Errorf("browser console: %s", b)
		}
	})
	return ctx
}

// openApp serves the app, opens it in a fresh browser and waits for the
// first analysis of the demo.
func openApp(t *testing.T, webgpu bool) (context.Context, state) {
	t.Helper()
	ts := serve(t)
	ctx := browser(t, webgpu)
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL)); err != nil {
		t.Fatal(err)
	}
	return ctx, waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1`, firstLoad)
}

// state is what the page exposes in #vl-state.
type state struct {
	Status  string  `json:"status"`
	Seq     int     `json:"seq"`
	Model   string  `json:"model"`
	Backend string  `json:"backend"`
	Engine  string  `json:"engine"` // where the engine runs: worker or page
	Error   string  `json:"error"`
	FirstMS float64 `json:"first_ms"`
	Note    string  `json:"note"`
	JSON    string  `json:"json"`
}

func (s state) summary(t *testing.T) session.Summary {
	t.Helper()
	var out session.Summary
	if err := json.Unmarshal([]byte(s.JSON), &out); err != nil {
		t.Fatalf("page summary: %v\n%s", err, s.JSON)
	}
	return out
}

// waitState polls #vl-state until cond (a JS expression over d, its dataset,
// and j, its parsed JSON) holds.
func waitState(t *testing.T, ctx context.Context, cond string, timeout time.Duration) state {
	t.Helper()
	expr := fmt.Sprintf(`(() => {
		const e = document.getElementById('vl-state');
		if (!e) return false;
		const d = e.dataset;
		let j = {};
		try { j = JSON.parse(e.textContent || '{}'); } catch (_) {}
		if (!(%s)) return false;
		const note = document.querySelector('.vl-badge-note');
		return {status: d.status, seq: +d.seq, model: d.model, backend: d.backend, engine: d.engine, error: d.error,
			first_ms: +d.firstMs, note: note ? note.title : '', json: e.textContent};
	})()`, cond)
	tctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	s, err := chromedp.Run(tctx, chromedp.Poll[state](expr, chromedp.WithPollingInterval(100*time.Millisecond),
		chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		last, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const e = document.getElementById('vl-state');
			return e ? JSON.stringify(e.dataset) : document.body.innerText.slice(0, 400); })()`))
		screenshot(t, ctx, "timeout-"+t.Name())
		t.Fatalf("waiting for %s: %v (page state: %s)", cond, err, last)
	}
	return s
}

func eval(t *testing.T, ctx context.Context, js string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](js)); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
}

// screenshot saves a full-page PNG with the test's artefacts.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	saveShot(t, name, buf)
}

// saveShot writes a PNG screenshot with the test's artefacts.
func saveShot(t *testing.T, name string, buf []byte) {
	t.Helper()
	path := filepath.Join(env.shots, strings.NewReplacer("/", "-", " ", "-").Replace(name)+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	t.Logf("screenshot: %s", path)
}

// native computes on the CPU, natively, what the page should show.
func native(t *testing.T, m *session.Model, img *session.Image, s session.Settings) session.Summary {
	t.Helper()
	return nativeAnalysis(t, m, img, s).Summary()
}

func nativeAnalysis(t *testing.T, m *session.Model, img *session.Image, s session.Settings) *session.Analysis {
	t.Helper()
	in, err := m.Prepare(img)
	if err != nil {
		t.Fatal(err)
	}
	a, err := session.Analyze(lens.NewCPU(m.Model), nil, m, img, in, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// sameRanks compares every rank of every site, block and token, and the
// top-5 of the logits.
func sameRanks(t *testing.T, what string, got, want session.Summary) {
	t.Helper()
	if got.Target != want.Target || got.Predicted != want.Predicted {
		t.Errorf("%s: target/predicted %d/%d, native %d/%d", what, got.Target, got.Predicted, want.Target, want.Predicted)
	}
	cmp := func(run string, g, w *session.RunJSON) {
		if (g == nil) != (w == nil) {
			t.Errorf("%s %s: present in one side only", what, run)
			return
		}
		if g == nil {
			return
		}
		if !slices.Equal(g.Top, w.Top) || !slices.Equal(g.Tokens, w.Tokens) {
			t.Errorf("%s %s: top %v tokens %v, native top %v tokens %v", what, run, g.Top, g.Tokens, w.Top, w.Tokens)
		}
		diff := 0
		for _, s := range vit.AllSites() {
			for b := range w.Ranks[s.String()] {
				gr, wr := g.Ranks[s.String()], w.Ranks[s.String()]
				if b >= len(gr) || !slices.Equal(gr[b], wr[b]) {
					diff++
					if diff <= 3 {
						t.Errorf("%s %s %s block %d: ranks %v, native %v", what, run, s, b+1, gr[min(b, len(gr)-1)], wr[b])
					}
				}
			}
		}
	}
	cmp("before", &got.Base, &want.Base)
	cmp("after", got.After, want.After)
}

func demo(t *testing.T) (*session.Model, []*session.Image) {
	t.Helper()
	m, err := session.LoadDemo(public.Files)
	if err != nil {
		t.Fatalf("demo model: %v", err)
	}
	samples, err := session.Samples(public.Files)
	if err != nil || len(samples) < 3 {
		t.Fatalf("samples: %d, %v", len(samples), err)
	}
	return m, samples
}
