package app

import (
	"strconv"

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

// cellAt finds the cell under the pointer of a figure whose cells are one
// image (figure.Heatmap's, with data-rows and data-cols): its row, column
// and the image. ok is false off the cells.
func cellAt(e app.Event) (row, col int, img app.Value, ok bool) {
	t := e.Get("target")
	if !t.Truthy() || t.Get("closest").IsUndefined() {
		return 0, 0, nil, false
	}
	img = t.Call("closest", "[data-rows]")
	if !img.Truthy() {
		return 0, 0, nil, false
	}
	rows, errR := strconv.Atoi(img.Call("getAttribute", "data-rows").String())
	cols, errC := strconv.Atoi(img.Call("getAttribute", "data-cols").String())
	box := img.Call("getBoundingClientRect")
	w, h := box.Get("width").Float(), box.Get("height").Float()
	if errR != nil || errC != nil || w <= 0 || h <= 0 {
		return 0, 0, nil, false
	}
	x := (e.Get("clientX").Float() - box.Get("left").Float()) / w
	y := (e.Get("clientY").Float() - box.Get("top").Float()) / h
	if x < 0 || x >= 1 || y < 0 || y >= 1 {
		return 0, 0, nil, false
	}
	return min(int(y*float64(rows)), rows-1), min(int(x*float64(cols)), cols-1), img, true
}

// showTip makes tip the tooltip of a figure's cells image (its <title>),
// written directly: redrawing the figure for it would rebuild its SVG.
func showTip(img app.Value, tip string) {
	title := img.Call("querySelector", "title")
	if title.Truthy() && title.Get("textContent").String() != tip {
		title.Set("textContent", tip)
	}
}

// selectOption is an <option>.
func selectOption(value, label string, selected bool) app.UI {
	return app.Option().Value(value).Selected(selected).Text(label)
}
