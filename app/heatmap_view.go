package app

import (
	"fmt"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/figure"
	"vitlens/app/session"
	"vitlens/vit"
)

// HeatmapView is the blocks × tokens map of the target's rank; clicking a
// cell selects that block and token.
type HeatmapView struct {
	app.Compo
	A     *session.Analysis
	Site  vit.Site
	Block int
	Token int

	keys gridCursor // rows are blocks, columns tokens
	// hm is the heat-map drawn, for the tooltip of the cell under the
	// pointer.
	hm figure.Heatmap
}

func (hv *HeatmapView) Render() app.UI {
	hm := rankHeatmap(hv.A, hv.Site, hv.Block, hv.Token)
	hv.hm = hm
	said := ""
	if hv.keys.on {
		hm.Cursor = &[2]int{hv.keys.row, hv.keys.col}
		said = hm.Tip(hv.keys.row, hv.keys.col)
	}
	return card("vl-heatmap", "", "Rank per block and token", []app.UI{
		exportButton("PNG", "png:fig-heatmap", "Save the heat-map as PNG"),
		exportButton("CSV", "readouts", "Every rank, logit and top-5 for every run, site, block and token"),
	},
		keyGrid(app.Div().Class("vl-scroll"), "Rank per block and token: arrow keys move between cells, Enter or Space selects the block and token").
			OnClick(hv.onClick).OnMouseMove(hv.onMove).OnKeyDown(hv.onKey).OnFocus(hv.onFocus).OnBlur(hv.onBlur).
			Body(figureBox("fig-heatmap", hm.SVG())),
		srOnly("vl-heatmap-said", said),
	)
}

func (hv *HeatmapView) onKey(ctx app.Context, e app.Event) {
	c := hv.A.Model.Model.Config
	act, ok := hv.keys.key(e.Get("key").String(), c.Depth, c.NumTokens())
	if !ok {
		ctx.PreventUpdate()
		return
	}
	if act {
		ctx.NewActionWithValue(actCell, [2]int{hv.keys.row, hv.keys.col})
	}
}

func (hv *HeatmapView) onFocus(ctx app.Context, e app.Event) {
	hv.keys.focus(ctx, hv.Block, max(hv.Token, 0))
}

func (hv *HeatmapView) onBlur(ctx app.Context, e app.Event) { hv.keys.blur() }

// rankHeatmap is the heat-map of the target's rank in a's current run, the
// block and token outlined.
func rankHeatmap(a *session.Analysis, site vit.Site, block, token int) figure.Heatmap {
	c := a.Model.Model.Config
	r := a.Current()
	n := c.NumTokens()
	hm := figure.Heatmap{Classes: c.Classes, SelBlock: block, SelToken: token, Labels: make([]string, n)}
	for t := range hm.Labels {
		hm.Labels[t] = session.TokenLabel(c, t)
	}
	for b := 0; b < c.Depth; b++ {
		row := make([]int32, n)
		for t := range row {
			row[t] = -1
		}
		ro := r.At(site, b)
		for pos, t := range r.Tokens {
			row[t] = ro.Rank[pos]
		}
		hm.Ranks = append(hm.Ranks, row)
	}
	which := ""
	if a.After != nil {
		which = " after the intervention"
	}
	hm.Title = fmt.Sprintf("Rank of %s at %s%s", a.Model.ClassName(r.Target), site, which)
	return hm
}

func (hv *HeatmapView) onClick(ctx app.Context, e app.Event) {
	if b, t, _, ok := cellAt(e); ok {
		ctx.NewActionWithValue(actCell, [2]int{b, t})
	}
}

// onMove gives the cell under the pointer its tooltip.
func (hv *HeatmapView) onMove(ctx app.Context, e app.Event) {
	ctx.PreventUpdate()
	if b, t, img, ok := cellAt(e); ok && b < len(hv.hm.Ranks) {
		showTip(img, hv.hm.Tip(b, t))
	}
}
