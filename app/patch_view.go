package app

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/figure"
	"vitlens/app/session"
	"vitlens/vit/patching"
)

// actImage makes an image the current one (the clean image of patching):
// the patching card's "Swap" raises it with the corrupted image.
const actImage = "vl.image" // *session.Image

// maxUploads is how many of the user's own images the page keeps for the
// patching card's picker (the oldest is forgotten first).
const maxUploads = 8

// handlePatchActions registers the patching card's actions.
func (p *Page) handlePatchActions(ctx app.Context) {
	ctx.Handle(actImage, func(ctx app.Context, a app.Action) {
		if img, ok := a.Value.(*session.Image); ok && img != nil {
			p.setImage(ctx, img)
		}
	})
}

// keepUpload remembers an image the user opened, dropped or pasted, so it
// can be chosen as the corrupted image after another one is shown.
func (p *Page) keepUpload(img *session.Image) {
	for _, s := range p.samples {
		if s == img {
			return
		}
	}
	for _, u := range p.uploads {
		if u == img {
			return
		}
	}
	p.uploads = append(p.uploads, img)
	if len(p.uploads) > maxUploads {
		p.uploads = p.uploads[len(p.uploads)-maxUploads:]
	}
}

// PatchView is activation patching in the page: the current image is the
// clean one, a sample or one of the user's own images the corrupted one.
// One map patches every site of a grid (each head of each block, or each
// token of the residual stream entering or leaving each block) of the
// corrupted image with the clean image's, scored by the chosen metric;
// clicking a cell runs that patch again to show the class's rank move. It
// runs in the engine on the CPU (vit/patching through app/session),
// whatever the backend: the page holds no weights.
type PatchView struct {
	app.Compo
	A       *session.Analysis
	Samples []*session.Image
	Uploads []*session.Image // the user's own images, oldest first
	Current *session.Image   // the page's image, for Swap
	Eng     *engineClient

	corrupt *session.Image // nil until picked
	grid    session.PatchGrid
	metric  string // vit/patching's kind: logit_diff, logit or rank
	versus  int    // class B of logit_diff; -1: the corrupted image's prediction

	key     patchKey // what pm is (being) computed for
	gen     atomic.Int64
	reqID   atomic.Int64 // the engine's request making the map, to cancel
	pmID    int          // the request that made pm: its cells name it
	pm      *session.PatchMap
	err     error
	elapsed time.Duration
	done    int       // cells computed so far, while pm is nil
	cell    string    // what the last clicked cell did
	cellAt  [5]string // its block, column, rank (0 is the top), metric and grid, for tests
	keys    gridCursor
	row     int // the block drawn over the image (residual maps): the last patched cell's
}

// patchKey is everything a map depends on: the clean image's pixels for
// the model (the page keeps one Input per image), not the analysis, so that
// dropping patches or choosing a block does not run the map again.
type patchKey struct {
	model   *session.Model
	clean   *session.Input
	corrupt *session.Image
	opt     session.PatchOptions
}

func (pv *PatchView) OnInit() {
	pv.grid, pv.metric, pv.versus = session.GridHeads, "logit_diff", -1
}

// OnUpdate follows a new analysis (another image, class or model).
func (pv *PatchView) OnUpdate(ctx app.Context) { pv.refresh(ctx) }

// refresh starts the map for the current choices unless it is already
// there or on its way. The engine computes it (in its worker, or in the
// page yielding between cells), reporting the cells done; a newer choice
// cancels it.
func (pv *PatchView) refresh(ctx app.Context) {
	a := pv.A
	if a == nil || pv.corrupt == nil || a.Image != pv.Current {
		// Nothing picked, or the page's new image is still being analysed:
		// wait for its analysis rather than patch the previous one.
		pv.wait()
		return
	}
	if pv.corrupt == a.Image {
		pv.wait()
		pv.err = errors.New("the corrupted image is the current (clean) one: pick another, or show another image")
		return
	}
	opt := session.PatchOptions{Grid: pv.grid, Metric: pv.metric, A: a.Base.Target, B: pv.versus}
	key := patchKey{a.Model, a.Input, pv.corrupt, opt}
	if key == pv.key {
		return
	}
	pv.stop()
	pv.key, pv.pm, pv.err, pv.done, pv.cell, pv.cellAt = key, nil, nil, 0, "", [5]string{}
	gen := pv.gen.Add(1)
	eng, m, clean, corrupt := pv.Eng, a.Model, a.Input, pv.corrupt
	id := eng.newID()
	pv.reqID.Store(int64(id))
	ctx.Async(func() {
		start := time.Now()
		pm, err := eng.patch(id, m, clean, corrupt, opt, func(done, total int) {
			ctx.Dispatch(func(ctx app.Context) {
				if pv.gen.Load() == gen {
					pv.done = done
				}
			})
		})
		elapsed := time.Since(start)
		pv.reqID.CompareAndSwap(int64(id), 0)
		ctx.Dispatch(func(ctx app.Context) {
			if pv.gen.Load() == gen {
				pv.pm, pv.pmID, pv.err, pv.elapsed = pm, id, err, elapsed
			}
		})
	})
}

// stop cancels the map on its way, if any.
func (pv *PatchView) stop() {
	if id := pv.reqID.Swap(0); id != 0 && pv.Eng != nil {
		pv.Eng.cancelID(int(id))
	}
}

// OnDismount stops a map nobody will see.
func (pv *PatchView) OnDismount() { pv.stop() }

// wait drops the map and stops any on its way.
func (pv *PatchView) wait() {
	pv.stop()
	pv.key, pv.pm, pv.err, pv.done, pv.cell, pv.cellAt = patchKey{}, nil, nil, 0, "", [5]string{}
	pv.gen.Add(1)
}

func (pv *PatchView) Render() app.UI {
	a := pv.A
	title := "Activation patching"
	hint := app.P().Class("vl-hint").Text("The current image is the clean one. Each site of the corrupted image (a head of a block, " +
		"or one token of the residual stream) gets the clean image's activation in turn, and the map shows how far that moves the metric. " +
		"Click a cell to see the class's rank with that site patched. Class A is the target class (under Prediction). " +
		"Runs on the CPU, whichever backend is chosen; one forward per cell.")
	controls := app.Div().Class("vl-field-row").Body(pv.renderPicker(), pv.renderGrid(), pv.renderMetric(a))
	switch {
	case pv.corrupt == nil:
		return card("vl-patch", "", title, nil, hint, controls)
	case pv.err != nil:
		return card("vl-patch", "", title, nil, hint, controls, app.P().Class("vl-banner vl-banner-error").Text(pv.err.Error()))
	case pv.pm == nil && pv.key == patchKey{}:
		return card("vl-patch", "", title, nil, hint, controls,
			app.P().ID("vl-patch-busy").Class("vl-hint").Aria("live", "polite").Text("Waiting for the current image's analysis…"))
	case pv.pm == nil:
		return card("vl-patch", "", title, nil, hint, controls,
			app.P().ID("vl-patch-busy").Class("vl-hint").Aria("live", "polite").Text(fmt.Sprintf("Patching… %d cells done.", pv.done)))
	}
	pm := pv.pm
	c := a.Model.Model.Config
	grid := figure.SignedGrid{Values: pm.Effect, RowName: "block", ColName: "head", Unit: pv.unit(),
		Legend: "red raises the metric"}
	switch pm.Grid {
	case session.GridResidPre, session.GridResidPost:
		grid.ColName = "token ([CLS] is 0)"
		for t := range c.NumTokens() {
			grid.ColLabels = append(grid.ColLabels, session.TokenLabel(c, t))
		}
	}
	grid.Title = fmt.Sprintf("%s: patched − corrupted %s", pm.Grid.Hook(), pm.Metric.Kind)
	if pm.Metric.Kind == "rank" {
		// Fewer classes above is better: show places gained, so that red
		// again means towards the top.
		grid.Values = make([][]float64, len(pm.Effect))
		for b, row := range pm.Effect {
			grid.Values[b] = make([]float64, len(row))
			for j, v := range row {
				grid.Values[b][j] = -v
			}
		}
		grid.Title = fmt.Sprintf("%s: places class A rises", pm.Grid.Hook())
		grid.Legend = "red: it rises"
	}
	said := ""
	if pv.keys.on {
		grid.Cursor = &[2]int{pv.keys.row, pv.keys.col}
		said = grid.Tip(pv.keys.row, pv.keys.col)
	}
	cells := len(pm.Effect) * len(pm.Effect[0])
	return card("vl-patch", "", title, nil, hint, controls,
		app.P().ID("vl-patch-base").Text(fmt.Sprintf("%s: clean %.4f, corrupted %.4f. Rank of %s: clean %d, corrupted %d. %d patches in %v.",
			pv.metricName(a), pm.Clean, pm.Corrupt, className(a, pm.Metric.A), pm.CleanRank+1, pm.CorruptRank+1,
			cells, pv.elapsed.Round(time.Millisecond))),
		keyGrid(app.Div().ID("vl-patch-map").Class("vl-scroll"), "Patching map: arrow keys move between cells, Enter or Space patches the cell").
			DataSet("grid", string(pm.Grid)).DataSet("metric", pm.Metric.String()).
			OnClick(pv.onCell).OnKeyDown(pv.onKey).OnFocus(pv.onFocus).OnBlur(func(ctx app.Context, e app.Event) { pv.keys.blur() }).
			Body(figureBox("fig-patch", grid.SVG())),
		srOnly("vl-patch-said", said),
		pv.renderOverImage(grid),
		app.P().ID("vl-patch-cell").Aria("live", "polite").DataSet("block", pv.cellAt[0]).DataSet("col", pv.cellAt[1]).
			DataSet("rank", pv.cellAt[2]).DataSet("metric", pv.cellAt[3]).DataSet("grid", pv.cellAt[4]).Text(pv.cell),
	)
}

// renderOverImage draws one block's row of a residual map over the clean
// image, patch by patch, in the map's colours; a click patches that token.
// Heads have no place in the image: nothing for them.
func (pv *PatchView) renderOverImage(grid figure.SignedGrid) app.UI {
	a, pm := pv.A, pv.pm
	c := a.Model.Model.Config
	if pm.Grid == session.GridHeads {
		return nil
	}
	b := min(max(pv.row, 0), c.Depth-1)
	scale := 0.0
	for _, row := range grid.Values {
		for _, v := range row {
			scale = math.Max(scale, math.Abs(v))
		}
	}
	g, first := c.GridSize(), c.FirstImageToken()
	ov := figure.Overlay{
		Title:    fmt.Sprintf("Block %d over the clean image", b),
		Subtitle: "the map's row; click a patch to patch it",
		Image:    previewURI(a.Input), Grid: g, FirstToken: first, Selected: -1, Cursor: -1,
		Colours: make([]string, g*g), Titles: make([]string, g*g), Size: 200, Alpha: 0.7,
	}
	for p := range g * g {
		col := patching.Diverging(grid.Values[b][p+first], scale)
		ov.Colours[p] = fmt.Sprintf("#%02x%02x%02x", col.R, col.G, col.B)
		ov.Titles[p] = grid.Tip(b, p+first)
	}
	return app.Div().ID("vl-patch-image").DataSet("block", b).OnClick(pv.onImagePatch).Body(figureBox("fig-patch-image", ov.SVG()))
}

// onImagePatch patches the clicked patch at the block drawn over the image.
// It reads the block from the element: a handler closing over the block
// went stale in the browser (go-app kept the first one it was given).
func (pv *PatchView) onImagePatch(ctx app.Context, e app.Event) {
	b, ok1 := dataInt(e, "block")
	t, ok2 := dataInt(e, "token")
	if ok1 && ok2 {
		pv.runCell(ctx, b, t)
	}
}

// renderPicker chooses the corrupted image among the user's own images
// and the samples, with Swap to make it the clean one.
func (pv *PatchView) renderPicker() app.UI {
	opts := []app.UI{selectOption("", "pick a corrupted image…", pv.corrupt == nil)}
	for i := len(pv.Uploads) - 1; i >= 0; i-- { // newest first
		u := pv.Uploads[i]
		opts = append(opts, selectOption("u"+strconv.Itoa(i), "yours: "+u.Name, u == pv.corrupt))
	}
	for i, s := range pv.Samples {
		opts = append(opts, selectOption("s"+strconv.Itoa(i), sampleLabel(s.Name), s == pv.corrupt))
	}
	return app.Div().Class("vl-field").Body(
		app.Label().For("vl-corrupt").Text("Corrupted image "),
		app.Select().ID("vl-corrupt").OnChange(pv.onPick).Body(opts...),
		app.If(pv.corrupt != nil && pv.Current != nil && pv.corrupt != pv.Current, func() app.UI {
			return app.Button().ID("vl-patch-swap").Class("vl-btn").Title("Make the corrupted image the current (clean) one, and this one the corrupted").
				Text("Swap").OnClick(pv.onSwap)
		}),
	)
}

func (pv *PatchView) renderGrid() app.UI {
	labels := map[session.PatchGrid]string{
		session.GridHeads:     "heads × blocks (attn.hook_z, each head at every token)",
		session.GridResidPre:  "tokens × blocks (hook_resid_pre, each token's stream entering the block)",
		session.GridResidPost: "tokens × blocks (hook_resid_post, each token's stream leaving the block)",
	}
	var opts []app.UI
	for _, g := range session.PatchGrids {
		opts = append(opts, selectOption(string(g), labels[g], g == pv.grid))
	}
	return app.Div().Class("vl-field").Body(
		app.Label().For("vl-patch-grid").Text("Patch "),
		app.Select().ID("vl-patch-grid").OnChange(func(ctx app.Context, e app.Event) {
			pv.grid = session.PatchGrid(ctx.JSSrc().Get("value").String())
			pv.refresh(ctx)
		}).Body(opts...),
	)
}

// renderMetric chooses vit/patching's metric; logit_diff's class B is the
// corrupted image's prediction unless one is chosen.
func (pv *PatchView) renderMetric(a *session.Analysis) app.UI {
	m := a.Model
	field := app.Div().Class("vl-field")
	body := []app.UI{
		app.Label().For("vl-patch-metric").Text("Metric "),
		app.Select().ID("vl-patch-metric").OnChange(func(ctx app.Context, e app.Event) {
			pv.metric = ctx.JSSrc().Get("value").String()
			pv.refresh(ctx)
		}).Body(
			selectOption("logit_diff", "logit difference, class A − class B", pv.metric == "logit_diff"),
			selectOption("logit", "logit of class A", pv.metric == "logit"),
			selectOption("rank", "rank of class A", pv.metric == "rank"),
		),
	}
	if pv.metric == "logit_diff" {
		body = append(body, app.Label().For("vl-patch-versus").Text(" class B "),
			&ClassSelect{ID: "vl-patch-versus", First: "the corrupted image's prediction", Model: m, Names: m.Classes,
				Value: max(pv.versus, -1)})
	}
	// The class menu's change bubbles here (see ClassSelect).
	return field.OnChange(pv.onVersus).Body(body...)
}

// metricName says the metric in words, with its classes.
func (pv *PatchView) metricName(a *session.Analysis) string {
	mt := pv.pm.Metric
	switch mt.Kind {
	case "logit_diff":
		return fmt.Sprintf("logit of %s − logit of %s", className(a, mt.A), className(a, mt.B))
	case "rank":
		return "rank of " + className(a, mt.A)
	}
	return "logit of " + className(a, mt.A)
}

func (pv *PatchView) unit() string {
	if pv.pm.Metric.Kind == "rank" {
		return "places"
	}
	return "logit"
}

// onVersus takes class B from its menu; the metric's menu's change bubbles
// here too, and is not a class.
func (pv *PatchView) onVersus(ctx app.Context, e app.Event) {
	if e.Get("target").Get("id").String() != "vl-patch-versus" {
		ctx.PreventUpdate() // the metric's own handler redraws
		return
	}
	if n, ok := selectedClass(e); ok {
		pv.versus = n
		pv.refresh(ctx)
	}
}

func (pv *PatchView) onPick(ctx app.Context, e app.Event) {
	v := ctx.JSSrc().Get("value").String()
	list := pv.Samples
	if strings.HasPrefix(v, "u") {
		list = pv.Uploads
	}
	pv.corrupt = nil
	if i, err := strconv.Atoi(strings.TrimLeft(v, "us")); err == nil && i >= 0 && i < len(list) {
		pv.corrupt = list[i]
	}
	pv.refresh(ctx)
}

func (pv *PatchView) onSwap(ctx app.Context, e app.Event) {
	if pv.corrupt == nil || pv.Current == nil {
		return
	}
	clean := pv.corrupt
	pv.corrupt = pv.Current
	pv.wait() // the new image's analysis starts the next map
	ctx.NewActionWithValue(actImage, clean)
}

func (pv *PatchView) onKey(ctx app.Context, e app.Event) {
	if pv.pm == nil {
		return
	}
	act, ok := pv.keys.key(e.Get("key").String(), len(pv.pm.Effect), len(pv.pm.Effect[0]))
	if !ok {
		ctx.PreventUpdate()
		return
	}
	if act {
		pv.runCell(ctx, pv.keys.row, pv.keys.col)
	}
}

func (pv *PatchView) onFocus(ctx app.Context, e app.Event) { pv.keys.focus(ctx, 0, 0) }

func (pv *PatchView) onCell(ctx app.Context, e app.Event) {
	b, ok1 := dataInt(e, "row")
	j, ok2 := dataInt(e, "col")
	if ok1 && ok2 {
		pv.runCell(ctx, b, j)
	}
}

// runCell patches one cell again (in the engine) and says how the class's
// rank moved.
func (pv *PatchView) runCell(ctx app.Context, b, j int) {
	if pv.pm == nil {
		return
	}
	pm, id, m := pv.pm, pv.pmID, pv.A.Model
	pv.row = b
	ctx.Async(func() {
		cell, err := pv.Eng.patchCell(m, id, b, j)
		ctx.Dispatch(func(ctx app.Context) {
			if pv.pm == pm { // not a newer map's
				pv.showCell(pm, b, j, cell, err)
			}
		})
	})
}

// showCell says what patching cell (b, j) of pm did.
func (pv *PatchView) showCell(pm *session.PatchMap, b, j int, cell session.PatchCell, err error) {
	if err != nil {
		pv.cell = err.Error()
		return
	}
	a := pv.A
	site := fmt.Sprintf("head %d", j)
	if pm.Grid != session.GridHeads {
		site = session.TokenLabel(a.Model.Model.Config, j)
	}
	pv.cell = fmt.Sprintf("%s patched at block %d, %s: rank of %s %d → %d; %s %.4f → %.4f (clean %.4f)",
		pm.Grid.Hook(), b, site, className(a, pm.Metric.A), pm.CorruptRank+1, cell.Rank+1, pv.metricName(a), pm.Corrupt, cell.Metric, pm.Clean)
	pv.cellAt = [5]string{strconv.Itoa(b), strconv.Itoa(j), strconv.Itoa(cell.Rank),
		strconv.FormatFloat(cell.Metric, 'g', -1, 64), string(pm.Grid)}
}
