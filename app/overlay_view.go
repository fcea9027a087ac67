package app

import (
	"fmt"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/figure"
	"vitlens/app/session"
	"vitlens/vit"
	"vitlens/vit/lens"
)

// OverlayView is the image with its patch grid coloured by the target's
// rank at the chosen block and site, before and after an intervention, with
// the top-5 classes of the patch under the pointer.
type OverlayView struct {
	app.Compo
	A     *session.Analysis
	Site  vit.Site
	Block int
	Token int
	Mode  string

	hover int // token under the pointer; -1 none (local: only this view redraws)
	in    bool
	keys  gridCursor // over the patch grid

	// drawn keeps each figure's SVG with what it shows: hovering redraws
	// the view, and a 14 × 14 grid's tooltips (each with five class names)
	// are not worth writing again for the same figure.
	drawn [2]overlaySVG
}

type overlaySVG struct {
	key   overlayKey
	names []string // the model's class names (new ones redraw it)
	svg   string
}

// overlayKey is everything else an overlay figure shows.
type overlayKey struct {
	r                       *lens.Result
	in                      *session.Input
	site                    vit.Site
	block, selected, cursor int
	label, id               string
	sideBySide              bool
}

func (o *OverlayView) Render() app.UI {
	a := o.A
	c := a.Model.Model.Config
	runs := []struct {
		id, label string
		r         *lens.Result
	}{{"fig-overlay", "unperturbed", a.Base}}
	if a.After != nil {
		runs[0].label = "before"
		runs = append(runs, struct {
			id, label string
			r         *lens.Result
		}{"fig-overlay-after", "after: " + interventionText(a.Settings), a.After})
	}
	site := app.Div().Class("vl-field vl-field-inline").Body(
		app.Label().For("vl-site").Text("read at"),
		app.Select().ID("vl-site").Title("Where in the block the residual stream is read").OnChange(func(ctx app.Context, e app.Event) {
			ctx.NewActionWithValue(actSite, ctx.JSSrc().Get("value").String())
		}).Body(
			selectOption("hs", "block output (hs)", o.Site == vit.SiteHS),
			selectOption("hs_mid", "after attention (hs_mid)", o.Site == vit.SiteHSMid),
			selectOption("attn", "attention update (attn)", o.Site == vit.SiteAttn),
			selectOption("mlp", "MLP update (mlp)", o.Site == vit.SiteMLP),
		),
	)
	tools := []app.UI{
		exportButton("PNG", "png:fig-overlays/"+o.exportName(), "Save the image overlay as PNG (before and after, when there is an intervention)"),
	}
	figs := make([]app.UI, len(runs))
	for i, run := range runs {
		figs[i] = app.Div().Class("vl-overlay").
			OnClick(o.onClick).OnMouseOver(o.onHover).OnMouseLeave(o.onLeave).
			Body(figureBox(run.id, o.figure(i, run.r, run.label, run.id)))
	}
	info := o.Token
	switch {
	case o.keys.on:
		info = c.FirstImageToken() + o.keys.row*c.GridSize() + o.keys.col
	case o.in:
		info = o.hover
	}
	act := "inspect it"
	if o.Mode == modeDrop {
		act = "drop or restore it"
	}
	grow := "vl-grow vl-grow-1"
	if a.After != nil {
		grow = "vl-grow vl-grow-2"
	}
	return card("vl-overlay-card", grow, "Patch ranks", tools,
		site,
		app.Div().Class("vl-slider").Body(
			app.Label().For("vl-block").Text(fmt.Sprintf("block %d of %d", o.Block+1, c.Depth)),
			app.Input().ID("vl-block").Type("range").Min(1).Max(c.Depth).Value(o.Block+1).
				OnInput(func(ctx app.Context, e app.Event) {
					var b int
					fmt.Sscan(ctx.JSSrc().Get("value").String(), &b)
					ctx.NewActionWithValue(actBlock, b-1)
				}),
		),
		keyGrid(app.Div().ID("fig-overlays").Class("vl-overlays"),
			"Patches of the image, coloured by the target's rank: arrow keys move between patches, Enter or Space to "+act).
			OnKeyDown(o.onKey).OnFocus(o.onFocus).OnBlur(o.onBlur).Body(figs...),
		o.renderInfo(info),
	)
}

func interventionText(s session.Settings) string {
	var parts []string
	if s.Edit != vit.EditNone {
		parts = append(parts, string(s.Edit))
	}
	if n := len(s.Drop); n > 0 {
		parts = append(parts, fmt.Sprintf("%d dropped", n))
	}
	return strings.Join(parts, ", ")
}

// exportName names the PNG after what it shows.
func (o *OverlayView) exportName() string {
	if o.A.After != nil {
		return "overlay-before-after"
	}
	return "overlay"
}

// previews are the latest inputs' pictures as data: URIs, encoded once per
// input rather than on every redraw (hover, cursor) and shared by the
// views that draw it (the overlay, the patching map's row).
var previews struct {
	of   [4]*session.Input
	uri  [4]string
	next int
}

// previewURI is the picture the model sees of in, as a data: URI.
func previewURI(in *session.Input) string {
	for i, of := range previews.of {
		if of == in {
			return previews.uri[i]
		}
	}
	i := previews.next
	previews.of[i], previews.uri[i] = in, figure.StoredPNGDataURI(in.Preview)
	previews.next = (i + 1) % len(previews.of)
	return previews.uri[i]
}

// figure is run i's SVG, drawn again only when what it shows changed.
func (o *OverlayView) figure(i int, r *lens.Result, label, id string) string {
	c := o.A.Model.Model.Config
	key := overlayKey{r: r, in: o.A.Input, site: o.Site, block: o.Block, selected: o.Token,
		cursor: -1, label: label, id: id, sideBySide: o.A.After != nil}
	if o.keys.on {
		key.cursor = o.keys.row*c.GridSize() + o.keys.col
	}
	names := o.A.Model.Classes
	if d := &o.drawn[i]; d.svg == "" || d.key != key || !sameSlice(d.names, names) {
		d.key, d.names, d.svg = key, names, o.svg(r, label, id)
	}
	return o.drawn[i].svg
}

func (o *OverlayView) svg(r *lens.Result, label, id string) string {
	a := o.A
	m := a.Model
	c := m.Model.Config
	g := c.GridSize()
	first := c.FirstImageToken()
	ro := r.At(o.Site, o.Block)
	size := 300.0
	if a.After != nil {
		size = 210 // before and after side by side, beside the prediction
	}
	ov := figure.Overlay{
		Title:    label,
		Subtitle: fmt.Sprintf("rank of %s · %s · block %d", m.ClassName(r.Target), o.Site, o.Block+1),
		Image:    previewURI(o.A.Input), Grid: g, FirstToken: first, Selected: -1,
		Colours: make([]string, g*g), Titles: make([]string, g*g), Size: size, Alpha: 0.55,
		Classes: c.Classes, LegendID: "scale-" + id, Cursor: -1,
	}
	if o.keys.on {
		ov.Cursor = o.keys.row*g + o.keys.col
	}
	if o.Token >= first {
		ov.Selected = o.Token - first
	}
	for p := 0; p < g*g; p++ {
		t := p + first
		pos := session.Position(r, t)
		if pos < 0 {
			ov.Titles[p] = session.TokenLabel(c, t) + ": dropped"
			continue
		}
		rank := int(ro.Rank[pos])
		ov.Colours[p] = figure.RankColour(rank, c.Classes)
		ov.Titles[p] = fmt.Sprintf("%s: rank %d of %d · top: %s", session.TokenLabel(c, t), rank+1, c.Classes,
			strings.Join(classNames(m, ro.TopOf(pos)), ", "))
	}
	return ov.SVG()
}

func classNames(m *session.Model, top []int32) []string {
	var out []string
	for _, k := range top {
		if k >= 0 {
			out = append(out, m.ClassName(int(k)))
		}
	}
	return out
}

// renderInfo lists the top-5 classes of token t in every run.
func (o *OverlayView) renderInfo(t int) app.UI {
	a := o.A
	m := a.Model
	c := m.Model.Config
	rows := []app.UI{}
	for _, run := range []struct {
		label string
		r     *lens.Result
	}{{"before", a.Base}, {"after", a.After}} {
		if run.r == nil {
			continue
		}
		pos := session.Position(run.r, t)
		label := ""
		if a.After != nil {
			label = run.label + ": "
		}
		if pos < 0 {
			rows = append(rows, app.Li().Text(label+"dropped"))
			continue
		}
		ro := run.r.At(o.Site, o.Block)
		rank := int(ro.Rank[pos])
		items := []app.UI{app.Span().Class("vl-muted").Text(fmt.Sprintf("%starget rank %d of %d · top-5: ", label, rank+1, c.Classes))}
		for i, k := range ro.TopOf(pos) {
			if k < 0 {
				continue
			}
			cls := "vl-tag"
			if int(k) == run.r.Target {
				cls += " vl-tag-target"
			}
			items = append(items, app.Span().Class(cls).Text(fmt.Sprintf("%d. %s", i+1, m.ClassName(int(k)))))
		}
		rows = append(rows, app.Li().Body(items...))
	}
	head := session.TokenLabel(c, t)
	switch {
	case o.keys.on:
		head += " (keyboard cursor)"
	case o.in:
		head += " (under the pointer)"
	default:
		head += " (selected; hover a patch to see its classes)"
	}
	// One button per token that is not a patch: [CLS], the distillation
	// token, registers.
	prefixButtons := app.Range(make([]struct{}, c.FirstImageToken())).Slice(func(t int) app.UI {
		return app.Button().Class("vl-link").Text("inspect " + session.TokenLabel(c, t)).
			OnClick(func(ctx app.Context, e app.Event) { ctx.NewActionWithValue(actPatch, t) })
	})
	return app.Div().ID("vl-patch-info").Class("vl-info").Aria("live", "polite").Body(
		app.Div().Class("vl-info-head").Body(app.Strong().Text(head), prefixButtons),
		app.Ul().Body(rows...),
	)
}

func (o *OverlayView) onClick(ctx app.Context, e app.Event) {
	if t, ok := dataInt(e, "token"); ok {
		ctx.NewActionWithValue(actPatch, t)
	}
}

func (o *OverlayView) onHover(ctx app.Context, e app.Event) {
	if t, ok := dataInt(e, "token"); ok && (t != o.hover || !o.in) {
		o.hover, o.in = t, true
		return
	}
	ctx.PreventUpdate()
}

func (o *OverlayView) onLeave(ctx app.Context, e app.Event) { o.in = false }

func (o *OverlayView) onKey(ctx app.Context, e app.Event) {
	c := o.A.Model.Model.Config
	g := c.GridSize()
	act, ok := o.keys.key(e.Get("key").String(), g, g)
	if !ok {
		ctx.PreventUpdate()
		return
	}
	if act {
		ctx.NewActionWithValue(actPatch, c.FirstImageToken()+o.keys.row*g+o.keys.col)
	}
}

// onFocus puts the cursor on the selected patch (the first one when
// [CLS] is selected).
func (o *OverlayView) onFocus(ctx app.Context, e app.Event) {
	c := o.A.Model.Model.Config
	g := c.GridSize()
	p := max(o.Token-c.FirstImageToken(), 0)
	o.keys.focus(ctx, p/g, p%g)
}

func (o *OverlayView) onBlur(ctx app.Context, e app.Event) { o.keys.blur() }
