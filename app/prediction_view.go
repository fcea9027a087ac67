package app

import (
	"fmt"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/session"
	"vitlens/vit/lens"
)

// PredictionView shows the top-5 classes (before and after an intervention)
// and lets any class be the target.
type PredictionView struct {
	app.Compo
	A *session.Analysis
}

func (pv *PredictionView) Render() app.UI {
	a := pv.A
	m := a.Model
	target := a.Settings.Target
	pred := a.Predicted()
	cols := []app.UI{pv.table("before", a.Base)}
	if a.After != nil {
		cols = []app.UI{pv.table("before", a.Base), pv.table("after", a.After)}
	}
	return card("vl-prediction", "", "Prediction", []app.UI{exportButton("CSV", "predictions", "Top-5 classes as CSV")},
		app.Div().Class("vl-field vl-field-inline").OnChange(onTarget).Body(
			app.Label().For("vl-target").Text("Target class"),
			&ClassSelect{ID: "vl-target", First: "predicted: " + m.ClassName(pred), Model: m, Names: m.Classes,
				Value: max(target, -1)},
		),
		app.Div().Class("vl-pred-cols").Body(cols...),
	)
}

// onTarget makes the class picked in the target menu the target.
func onTarget(ctx app.Context, e app.Event) {
	if n, ok := selectedClass(e); ok {
		ctx.NewActionWithValue(actTarget, n)
	}
}

func (pv *PredictionView) table(label string, r *lens.Result) app.UI {
	if pv.A.After == nil {
		label = ""
	}
	return topTable(pv.A.Model, r, label)
}

// topTable lists the top-5 classes of run r, the target highlighted, under
// caption ("" for none).
func topTable(m *session.Model, r *lens.Result, caption string) app.UI {
	top := m.Top(r, session.TopK)
	var head app.UI
	if caption != "" {
		head = app.Caption().Text(caption)
	}
	return app.Table().Class("vl-pred").Body(
		head,
		app.TBody().Body(
			app.Range(top).Slice(func(i int) app.UI {
				s := top[i]
				cls := ""
				if s.Class == r.Target {
					cls = "vl-pred-target"
				}
				return app.Tr().Class(cls).Title(fmt.Sprintf("logit %.3f", s.Logit)).Body(
					app.Td().Class("vl-pred-name").Text(s.Name),
					app.Td().Class("vl-pred-bar").Body(app.Progress().Max(1).Value(fmt.Sprintf("%.4f", s.Prob)).
						Aria("label", fmt.Sprintf("%s: %.1f%%", s.Name, 100*s.Prob))),
					app.Td().Class("vl-num").Text(fmt.Sprintf("%.1f%%", 100*s.Prob)),
				)
			}),
		),
	)
}
