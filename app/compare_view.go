package app

import (
	"fmt"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/figure"
	"vitlens/app/session"
	"vitlens/vit"
)

// CompareView sets two models side by side on the same image and class
// (the paper's trained model against its random initialisation, or B/32
// against B/16): top-5 of each, their identifiability curves overlaid, and
// their rank heat-maps side by side. Each shows its current run (after the
// intervention, when there is one: both get the same).
type CompareView struct {
	app.Compo
	A, B *session.Analysis
	Site vit.Site

	// hms are the heat-maps drawn, A's then B's, for the tooltip of the
	// cell under the pointer.
	hms [2]figure.Heatmap
}

func (cv *CompareView) Render() app.UI {
	a, b := cv.A, cv.B
	ra, rb := a.Current(), b.Current()
	class := a.Model.ClassName(ra.Target)
	nameA, nameB := "A: "+a.Model.Name, "B: "+b.Model.Name

	series := append(identSeries(a.Model.Model.Config, ra, cv.Site, " · A", false),
		identSeries(b.Model.Model.Config, rb, cv.Site, " · B", true)...)
	curve := figure.Curve(fmt.Sprintf("Identifiability of %s at %s: A solid, B dashed", class, cv.Site), series)

	heatmap := func(i int, x *session.Analysis, name, id string) app.UI {
		hm := rankHeatmap(x, cv.Site, -1, -1)
		hm.Title, hm.Width = shorten(name, 60), 300
		cv.hms[i] = hm
		return figureBox(id, hm.SVG())
	}
	return card("vl-compare", "", "Two models on the same image", []app.UI{
		exportButton("Curves PNG", "png:fig-compare-curve/compare-curve", "Save the overlaid identifiability curves as PNG"),
		exportButton("Heat-maps PNG", "png:vl-compare-heatmaps/compare-heatmaps", "Save both rank heat-maps side by side as PNG"),
		exportButton("CSV", "compare", "Every rank, logit and top-5 of both models as CSV"),
	},
		app.P().Class("vl-hint").Text(fmt.Sprintf("Both rank %s at %s. %s · %s.", class, cv.Site, nameA, nameB)),
		app.Div().Class("vl-row").Body(
			app.Div().Class("vl-col vl-compare-tops").Body(
				topTable(a.Model, ra, shorten(nameA, 48)),
				topTable(b.Model, rb, shorten(nameB, 48)),
			),
			figureBox("fig-compare-curve", curve),
		),
		app.Div().ID("vl-compare-heatmaps").Class("vl-side-by-side").OnMouseMove(cv.onMove).Body(
			heatmap(0, a, nameA, "fig-compare-a"),
			heatmap(1, b, nameB, "fig-compare-b"),
		),
	)
}

// onMove gives the cell under the pointer its tooltip.
func (cv *CompareView) onMove(ctx app.Context, e app.Event) {
	ctx.PreventUpdate()
	b, t, img, ok := cellAt(e)
	if !ok {
		return
	}
	hm := cv.hms[0]
	if img.Call("closest", "#fig-compare-b").Truthy() {
		hm = cv.hms[1]
	}
	if b < len(hm.Ranks) && t < len(hm.Ranks[b]) {
		showTip(img, hm.Tip(b, t))
	}
}
