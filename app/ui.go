package app

import (
	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// Small building blocks shared by the views.

// card is a titled panel; tools go on the right of the title.
func card(id, class, title string, tools []app.UI, body ...app.UI) app.UI {
	return app.Section().ID(id).Class("vl-card "+class).Body(
		app.Header().Class("vl-card-head").Body(
			app.H2().Text(title),
			app.Div().Class("vl-tools").Body(tools...),
		),
		app.Div().Class("vl-card-body").Body(body...),
	)
}

// exportButton downloads something of the current analysis (see
// Page.export). What to export travels in the data-export attribute, read by
// one named handler: go-app compares event handlers by function pointer, so
// a closure over what would keep the value of the button's first render
// (the before overlay saved while the after one is shown).
func exportButton(label, what, hint string) app.UI {
	return app.Button().Class("vl-chip").Title(hint).Aria("label", label+": "+hint).
		DataSet("export", what).Text(label).OnClick(onExport)
}

func onExport(ctx app.Context, e app.Event) {
	ctx.NewActionWithValue(actExport, ctx.JSSrc().Get("dataset").Get("export").String())
}

// figureBox holds an SVG figure; its id is what "png:<id>" exports.
func figureBox(id, svg string) app.UI {
	return app.Div().ID(id).Class("vl-figure").Body(app.Raw(svg))
}

// dataInt reads an integer data-* attribute from the event target or its
// closest ancestor that has it.
func dataInt(e app.Event, name string) (int, bool) {
	t := e.Get("target")
	if !t.Truthy() || t.Get("closest").IsUndefined() {
		return 0, false
	}
	el := t.Call("closest", "[data-"+name+"]")
	if !el.Truthy() {
		return 0, false
	}
	v := el.Call("getAttribute", "data-"+name)
	if !v.Truthy() {
		return 0, false
	}
	n := 0
	for _, r := range v.String() {
		if r < '0' || r > '9' {
			return 0, false
		}
		n = 10*n + int(r-'0')
	}
	return n, true
}

// selectOption is an <option>.
func selectOption(value, label string, selected bool) app.UI {
	return app.Option().Value(value).Selected(selected).Text(label)
}
