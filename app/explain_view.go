package app

import (
	"fmt"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/engine"
	"vitlens/app/figure"
	"vitlens/app/session"
	"vitlens/docs"
)

// ExplainView shows the paper's gradient map (class-space cross entropy of
// each block's [CLS] attention output, differentiated with respect to that
// block's attention) beside Chefer et al.'s relevance, for the analysis's
// target class. The engine computes them on the CPU (vit/explain), whatever
// the backend: with every analysis up to engine.AutoExplainParams, on a
// click beyond.
type ExplainView struct {
	app.Compo
	A *session.Analysis
	// X is the engine's answer: nil when not computed (a large model),
	// empty while it computes.
	X *engine.Explanation
}

func (ev *ExplainView) Render() app.UI {
	a := ev.A
	m := a.Model.Model
	target := a.Base.Target
	title := "Explanation of " + className(a, target)
	if !m.Config.ClassToken {
		return card("vl-explain", "", title, nil, app.P().Class("vl-hint").Text("The maps read the [CLS] query; this model has none."))
	}
	x := ev.X
	if x == nil {
		return card("vl-explain", "", title, nil,
			app.P().Class("vl-hint").Text(fmt.Sprintf("A backward pass of this %.0f M-parameter model runs on the CPU and takes a while.", float64(a.Model.NumParams())/1e6)),
			app.Button().Class("vl-btn vl-btn-primary").Text("Compute the maps").OnClick(func(ctx app.Context, e app.Event) {
				ctx.NewAction(actExplain)
			}))
	}
	if x.Maps == nil && x.Err == "" {
		return card("vl-explain", "", title, nil, app.P().Class("vl-hint").Text("Computing the maps…"))
	}
	if x.Err != "" {
		return card("vl-explain", "", title, nil, app.P().Class("vl-banner vl-banner-error").Text(x.Err))
	}
	pics := figure.Pictures{Title: title, Size: engine.ExplainSize, Images: x.Images,
		Captions: []string{"input", "ours (class-space gradients)", "Chefer et al."},
	}
	return card("vl-explain", "", title, []app.UI{exportButton("PNG", "png:fig-explain", "Save the explanation maps as PNG")},
		app.P().Class("vl-hint").Body(app.Text(fmt.Sprintf(
			"Which patches make the model see the target class. Ours: in every block, the attention output of [CLS] is read "+
				"through the classifier; the map is how much raising [CLS]'s attention to each patch would lower the cross "+
				"entropy of the target class, summed over blocks and heads. Chefer et al.: attention weighted by its gradient "+
				"for the final prediction, rolled out over the blocks. Red is more, blue less. Computed on the CPU in %v.",
			x.Elapsed.Round(time.Millisecond)))),
		figureBox("fig-explain", pics.SVG()),
		app.Details().Class("vl-advanced").Body(
			app.Summary().Text("How it is computed (docs/method.md, “Explanation maps”)"),
			app.Pre().Class("vl-doc").Text(docs.MethodSection("Explanation maps")),
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
