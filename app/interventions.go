package app

import (
	"fmt"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// Interventions edits the forward pass: attention edits and dropped
// patches (context perturbation), plus the backend choice.
type Interventions struct {
	app.Compo
	Edit     string
	Dropped  int
	Mode     string
	HasCLS   bool
	AllowGPU bool
	Note     string // why the backend is not WebGPU, if so
}

func (iv *Interventions) Render() app.UI {
	edit := func(value, label, hint string) app.UI {
		return app.Label().Class("vl-radio").Title(hint).Body(
			app.Input().Type("radio").Name("vl-edit").Value(value).Checked(iv.Edit == value).
				Disabled(value != "" && !iv.HasCLS).OnChange(func(ctx app.Context, e app.Event) {
				ctx.NewActionWithValue(actEdit, value)
			}),
			app.Span().Text(label),
		)
	}
	mode := func(value, label string) app.UI {
		cls := "vl-seg"
		if iv.Mode == value {
			cls += " vl-seg-on"
		}
		return app.Button().ID("vl-mode-" + value).Class(cls).Text(label).
			OnClick(func(ctx app.Context, e app.Event) { ctx.NewActionWithValue(actMode, value) })
	}
	backend := "auto"
	if !iv.AllowGPU {
		backend = "cpu"
	}
	return card("vl-interventions", "", "Interventions", nil,
		app.FieldSet().Class("vl-fieldset").Body(
			app.Legend().Text("Attention edit"),
			edit("", "none", "The model as trained"),
			edit("self_only", "self only", "Image tokens attend only to themselves ([CLS] unchanged)"),
			edit("no_cls", "no [CLS]", "Image tokens do not attend to [CLS] (rows not renormalised)"),
		),
		app.Div().Class("vl-field").Body(
			app.Span().Class("vl-label").Text("Clicking a patch"),
			app.Div().Class("vl-segmented").Body(mode(modeInspect, "inspects it"), mode(modeDrop, "drops it")),
		),
		app.P().ID("vl-dropped").Class("vl-hint").Body(
			app.Text(droppedText(iv.Dropped)),
			app.If(iv.Dropped > 0, func() app.UI {
				return app.Button().Class("vl-link").Text("restore all").
					OnClick(func(ctx app.Context, e app.Event) { ctx.NewAction(actClearDrops) })
			}),
		),
		app.Div().Class("vl-field").Body(
			app.Label().For("vl-backend-choice").Text("Compute on"),
			app.Select().ID("vl-backend-choice").OnChange(func(ctx app.Context, e app.Event) {
				ctx.NewActionWithValue(actBackend, ctx.JSSrc().Get("value").String())
			}).Body(
				selectOption("auto", "WebGPU when available", backend == "auto"),
				selectOption("cpu", "CPU (WebAssembly)", backend == "cpu"),
			),
		),
		app.If(iv.Note != "", func() app.UI { return app.P().Class("vl-hint").Text(iv.Note) }),
	)
}

func droppedText(n int) string {
	switch n {
	case 0:
		return "No patch dropped. "
	case 1:
		return "1 patch dropped. "
	}
	return fmt.Sprintf("%d patches dropped. ", n)
}
