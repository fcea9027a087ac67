package app

import (
	"fmt"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/figure"
	"vitlens/app/session"
	"vitlens/vit/explain"
)

// autoExplainParams is the model size up to which the explanation is
// computed with every analysis; beyond it a backward pass in WebAssembly takes
// seconds, so it waits for a click.
const autoExplainParams = 5_000_000

// ExplainView shows the paper's gradient map (class-space cross entropy of
// each block's [CLS] attention output, differentiated with respect to that
// block's attention) beside Chefer et al.'s relevance, for the analysis's
// target class. It runs on the CPU (vit/explain), whatever the backend.
type ExplainView struct {
	app.Compo
	A *session.Analysis

	seq     int // the analysis the maps belong to
	maps    *explain.Maps
	err     error
	elapsed time.Duration
	asked   bool // the user asked for a large model's maps
}

func (ev *ExplainView) Render() app.UI {
	a := ev.A
	m := a.Model.Model
	target := a.Base.Target
	title := "Explanation of " + className(a, target)
	if !m.Config.ClassToken {
		return card("vl-explain", "", title, nil, app.P().Class("vl-hint").Text("The maps read the [CLS] query; this model has none."))
	}
	if ev.seq != a.Seq {
		ev.seq, ev.maps, ev.err, ev.asked = a.Seq, nil, nil, false
	}
	if ev.maps == nil && ev.err == nil {
		if m.NumParams() > autoExplainParams && !ev.asked {
			return card("vl-explain", "", title, nil,
				app.P().Class("vl-hint").Text(fmt.Sprintf("A backward pass of this %.0f M-parameter model runs on the CPU and takes a while.", float64(m.NumParams())/1e6)),
				app.Button().Class("vl-btn vl-btn-primary").Text("Compute the maps").OnClick(func(ctx app.Context, e app.Event) {
					ev.asked = true
				}))
		}
		start := time.Now()
		ev.maps, ev.err = explain.Map(m, a.Input.Pixels, target, explain.Options{})
		ev.elapsed = time.Since(start)
	}
	if ev.err != nil {
		return card("vl-explain", "", title, nil, app.P().Class("vl-banner vl-banner-error").Text(ev.err.Error()))
	}
	const size = 168
	img := func(id, caption string, src string) app.UI {
		return app.Figure().ID(id).Class("vl-explain-map").Body(
			app.Img().Src(src).Alt(caption).Width(size).Height(size),
			app.FigCaption().Text(caption),
		)
	}
	mp := ev.maps
	return card("vl-explain", "", title, nil,
		app.P().Class("vl-hint").Text(fmt.Sprintf(
			"Ours: −Σ over blocks and heads of ∂CE/∂attention of [CLS] to each patch, where CE is the cross entropy of the block's attention output projected into class space (spec §3.9, plain CE). Chefer et al.: gradient-weighted attention rollout of the final logit. Computed on the CPU in %v.", ev.elapsed.Round(time.Millisecond))),
		app.Div().Class("vl-explain-row").Body(
			img("fig-explain-input", "input", figure.PNGDataURI(explain.Picture(a.Input.Pixels, size))),
			img("fig-explain-ours", "ours (class-space gradients)", figure.PNGDataURI(explain.Overlay(a.Input.Pixels, mp.Ours, mp.Grid, size))),
			img("fig-explain-chefer", "Chefer et al.", figure.PNGDataURI(explain.Overlay(a.Input.Pixels, mp.Chefer, mp.Grid, size))),
		),
	)
}

// className is "index · name" of a class of the analysed model.
func className(a *session.Analysis, c int) string {
	if c >= 0 && c < len(a.Model.Classes) {
		return fmt.Sprintf("%d · %s", c, a.Model.Classes[c])
	}
	return fmt.Sprint(c)
}
