package app

import (
	"fmt"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/engine"
	"vitlens/app/figure"
	"vitlens/app/session"
	"vitlens/vit/dla"
)

// DLAView is direct logit attribution of the analysis's target class: each
// head's share of the class's logit as a heads × blocks grid, with the MLPs,
// embeddings and the head's bias term beside it. The engine computes it on
// the CPU (vit/dla) with every analysis, whatever the backend, like the
// explanation maps.
type DLAView struct {
	app.Compo
	A *session.Analysis
	D *engine.DLA // nil until the engine answered
}

func (dv *DLAView) Render() app.UI {
	a := dv.A
	m := a.Model.Model
	target := a.Base.Target
	title := "Direct logit attribution of " + className(a, target)
	d := dv.D
	if d == nil {
		return card("vl-dla", "", title, nil, app.P().Class("vl-hint").Text("Computing…"))
	}
	if d.Err != "" {
		return card("vl-dla", "", title, nil, app.P().Class("vl-banner vl-banner-error").Text(d.Err))
	}
	r := d.Result
	rest := r.Bias
	mlp := 0.0
	for _, p := range r.Parts {
		switch {
		case p.Source >= 0 || p.Kind == dla.KindHead:
		case p.Kind == dla.KindMLP:
			mlp += p.Logit
		default:
			rest += p.Logit
		}
	}
	grid := figure.SignedGrid{Title: "Each head's share of the logit", Values: r.HeadGrid(m.Config),
		RowName: "block", ColName: "head", Unit: "of the logit"}
	return card("vl-dla", "", title, []app.UI{exportButton("Activations", "activations",
		"Every hook point's activations of this image, as in a vitlens cache file (safetensors, float32)")},
		app.P().Class("vl-hint").Text(fmt.Sprintf(
			"How much each attention head (its output times its slice of the output projection) writes "+
				"into the class's logit, read through the final LayerNorm with its scale frozen at the final residual's "+
				"(%s). Red adds to the logit, blue takes from it. Logit %.4f = the heads above + the MLPs %.4f + "+
				"embeddings, attention biases and the head's bias term %.4f. Computed on the CPU in %v.",
			r.Frozen(), r.Logit, mlp, rest, d.Elapsed.Round(time.Millisecond))),
		app.Div().Class("vl-scroll").Body(figureBox("fig-dla", grid.SVG())),
	)
}
