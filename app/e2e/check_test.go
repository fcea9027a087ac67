package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Checks shared by the browser tests: what the exports hold, axe-core's
// accessibility rules, and the page's layout.

// download is what a click on an export made the page save; Text is the
// content of a blob: download, read at once (the page revokes the URL).
type download struct{ Name, Href, Text string }

// recordDownloads makes the page record downloads instead of saving them.
func recordDownloads(t *testing.T, ctx context.Context) {
	t.Helper()
	eval(t, ctx, `window.vlDownloads = [];
		HTMLAnchorElement.prototype.click = function () {
			const d = {name: this.download, href: this.href, text: this.href.startsWith('blob:') ? null : ''};
			window.vlDownloads.push(d);
			if (d.text === null) fetch(d.href).then(r => r.text()).then(t => { d.text = t; });
		};`)
}

// waitDownloads waits until n downloads were recorded since the last call,
// and returns those.
func waitDownloads(t *testing.T, ctx context.Context, n int) []download {
	t.Helper()
	got, err := chromedp.Run(ctx, chromedp.Poll[[]download](fmt.Sprintf(`window.vlDownloads.length >= %d &&
		window.vlDownloads.every(d => d.text !== null) && window.vlDownloads.splice(0)`, n),
		chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		seen, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.vlDownloads.map(d => d.name)`))
		t.Fatalf("waiting for %d downloads: %v (got %q)", n, err, seen)
	}
	return got
}

// sameCSV compares two CSV files cell by cell: numbers within tol
// (relative, or absolute below 1), everything else exactly.
func sameCSV(t *testing.T, what string, got, want []byte, tol float64) {
	t.Helper()
	g, err1 := csv.NewReader(bytes.NewReader(got)).ReadAll()
	w, err2 := csv.NewReader(bytes.NewReader(want)).ReadAll()
	if err1 != nil || err2 != nil {
		t.Errorf("%s: not CSV: %v, %v", what, err1, err2)
		return
	}
	if len(g) != len(w) {
		t.Errorf("%s: %d rows, want %d", what, len(g), len(w))
		return
	}
	bad := 0
	for i := range w {
		same := len(g[i]) == len(w[i])
		for j := 0; same && j < len(w[i]); j++ {
			if g[i][j] == w[i][j] {
				continue
			}
			a, errA := strconv.ParseFloat(g[i][j], 64)
			b, errB := strconv.ParseFloat(w[i][j], 64)
			same = errA == nil && errB == nil && math.Abs(a-b) <= tol*max(1, math.Abs(b))
		}
		if !same {
			if bad++; bad <= 3 {
				t.Errorf("%s row %d: %q, want %q", what, i, g[i], w[i])
			}
		}
	}
}

// figurePNG compares a downloaded PNG with the figures now inside the
// element id, rasterised here independently of the page's export code
// (side by side, 16 px apart, at twice their size). It returns the
// figures' aria-labels.
func figurePNG(t *testing.T, ctx context.Context, d download, id string) []string {
	t.Helper()
	type result struct {
		W, H, WantW, WantH, Diff int
		Labels                   []string
	}
	r, err := chromedp.Run(ctx, chromedp.Evaluate[result](fmt.Sprintf(`(async () => {
		const load = src => new Promise((ok, fail) => { const i = new Image(); i.onload = () => ok(i); i.onerror = fail; i.src = src; });
		const got = await load(%q);
		const svgs = [...document.getElementById(%q).querySelectorAll('svg')];
		const sizes = svgs.map(s => [s.width.baseVal.value, s.height.baseVal.value]);
		const w = sizes.reduce((a, s) => a + s[0], 0) + 16 * (svgs.length - 1), h = Math.max(...sizes.map(s => s[1]));
		const want = document.createElement('canvas'); want.width = 2 * w; want.height = 2 * h;
		const g = want.getContext('2d'); g.fillStyle = '#fff'; g.fillRect(0, 0, want.width, want.height);
		let x = 0;
		for (const [i, s] of svgs.entries()) {
			const url = URL.createObjectURL(new Blob([new XMLSerializer().serializeToString(s)], {type: 'image/svg+xml'}));
			g.drawImage(await load(url), 2 * x, 0, 2 * sizes[i][0], 2 * sizes[i][1]);
			x += sizes[i][0] + 16;
		}
		const c = document.createElement('canvas'); c.width = got.naturalWidth; c.height = got.naturalHeight;
		c.getContext('2d').drawImage(got, 0, 0);
		const r = {w: c.width, h: c.height, wantw: want.width, wanth: want.height, diff: -1,
			labels: svgs.map(s => s.getAttribute('aria-label'))};
		if (r.w !== r.wantw || r.h !== r.wanth) return r;
		const a = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		const b = g.getImageData(0, 0, want.width, want.height).data;
		r.diff = 0;
		for (let i = 0; i < a.length; i += 4)
			if (Math.abs(a[i] - b[i]) + Math.abs(a[i+1] - b[i+1]) + Math.abs(a[i+2] - b[i+2]) > 6) r.diff++;
		return r;
	})()`, d.Href, id), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", d.Name, err)
	}
	if r.W != r.WantW || r.H != r.WantH || r.Diff != 0 {
		t.Errorf("%s is not the figure on screen (%s, %q): %dx%d with %d pixels differing, want %dx%d",
			d.Name, id, r.Labels, r.W, r.H, r.Diff, r.WantW, r.WantH)
	}
	return r.Labels
}

// axe-core, installed with npm on first use into a git-ignored folder.
const axeVersion = "4.14.1" // as the Makefile's AXE

var axe struct {
	once   sync.Once
	script string
	skip   string
}

// axeScript returns axe-core's source, or "" after logging why it is
// missing (no npm): the rest of the test still runs.
func axeScript(t *testing.T) string {
	t.Helper()
	axe.once.Do(func() {
		dir := filepath.Join(repoRoot(), "app", "e2e")
		path := filepath.Join(dir, "node_modules", "axe-core", "axe.min.js")
		if _, err := os.Stat(path); err != nil {
			npm, err := exec.LookPath("npm")
			if err != nil {
				axe.skip = "axe-core is not installed and npm is missing: install Node.js and npm (make test then installs axe-core)"
				return
			}
			cmd := exec.Command(npm, "install", "--no-save", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", dir, "axe-core@"+axeVersion)
			if out, err := cmd.CombinedOutput(); err != nil {
				axe.skip = fmt.Sprintf("installing axe-core@%s failed: %v\n%s", axeVersion, err, out)
				return
			}
		}
		data, err := os.ReadFile(path)
		if err != nil {
			axe.skip = err.Error()
			return
		}
		axe.script = string(data)
	})
	if axe.skip != "" {
		t.Logf("SKIPPED the axe-core check: %s", axe.skip)
	}
	return axe.script
}

// checkAxe runs axe-core over the page: no serious or critical violation.
func checkAxe(t *testing.T, ctx context.Context, state string) {
	t.Helper()
	type violation struct {
		ID, Impact, Help string
		Nodes            []string
	}
	script := axeScript(t)
	if script == "" {
		return
	}
	if loaded, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof axe !== 'undefined'`)); !loaded {
		eval(t, ctx, script)
	}
	vs, err := chromedp.Run(ctx, chromedp.Evaluate[[]violation](`axe.run(document, {resultTypes: ['violations']}).then(r =>
		r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => ({id: v.id, impact: v.impact, help: v.help,
			nodes: v.nodes.slice(0, 4).map(n => n.target.join(' ') + ' → ' + n.failureSummary.replace(/\s+/g, ' '))})))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe-core (%s): %v", state, err)
	}
	for _, v := range vs {
		t.Errorf("axe-core, %s: %s (%s): %s\n\t%s", state, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n\t"))
	}
	t.Logf("axe-core %s, %s: %d serious or critical violations", axeVersion, state, len(vs))
}

// pressUntil presses Tab until the focused element matches the CSS
// selector, at most limit times, and returns how many presses it took.
func pressUntil(t *testing.T, ctx context.Context, sel string, limit int) int {
	t.Helper()
	for i := 1; i <= limit; i++ {
		if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
			t.Fatal(err)
		}
		on, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`!!document.activeElement && document.activeElement.matches(%q)`, sel)))
		if err != nil {
			t.Fatal(err)
		}
		if on {
			return i
		}
	}
	where, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.outerHTML.slice(0, 120) : 'nothing'`))
	t.Fatalf("%s not reached in %d presses of Tab (focus on %s)", sel, limit, where)
	return 0
}

// focusRing says whether the focused element (or the label around a file
// input) shows an outline.
func focusRing(t *testing.T, ctx context.Context) string {
	t.Helper()
	ring, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		let e = document.activeElement;
		if (e.type === 'file') e = e.closest('label');
		const s = getComputedStyle(e);
		return s.outlineStyle === 'none' ? '' : s.outlineStyle + ' ' + s.outlineWidth + ' ' + s.outlineColor; })()`))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}
