package app

import (
	"html"
	"strconv"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/session"
)

// ClassSelect is a <select> of every class of a model ("3 · tench"), after a
// first option for the value -1 (the prediction). Its class options are not
// go-app nodes: with 1000 classes, go-app created 1000 elements when the
// menu appeared and built and compared 1000 more on every redraw of the view
// around it (the patching card redraws on each cell's progress), the largest
// part of the render steps of an ImageNet-sized model. They are written as
// HTML once per class list (classOptionsHTML, shared by every menu), which
// the browser parses natively, and the selection is set on the element. The
// element is an ordinary <select> (keyboard, screen readers); its change
// event bubbles to a handler on an element around it, which reads the value
// from the event's target.
type ClassSelect struct {
	app.Compo
	ID    string
	First string // the label of the value -1
	Model *session.Model
	// Names is the model's class list, only so that new names (loaded
	// after the model) redraw the options: they are read through the model.
	Names []string
	Value int

	filled string // the class options now in the element
}

func (cs *ClassSelect) Render() app.UI { return app.Select().ID(cs.ID) }

func (cs *ClassSelect) OnMount(ctx app.Context) { cs.sync() }

func (cs *ClassSelect) OnUpdate(ctx app.Context) { ctx.Defer(func(app.Context) { cs.sync() }) }

// sync writes what changed into the element: the options when the class
// list is new to it, the first option's label and the selection.
func (cs *ClassSelect) sync() {
	el := cs.JSValue()
	if el == nil || !el.Truthy() {
		return
	}
	if opts := classOptionsHTML(cs.Model, cs.Names); opts != cs.filled || !el.Get("options").Get("length").Truthy() {
		el.Set("innerHTML", `<option value="-1">`+html.EscapeString(cs.First)+`</option>`+opts)
		cs.filled = opts
	}
	if first := el.Get("options").Index(0); first.Get("text").String() != cs.First {
		first.Set("text", cs.First)
	}
	if v := strconv.Itoa(cs.Value); el.Get("value").String() != v {
		el.Set("value", v)
	}
}

// classOptions caches the last class list's options: the target menu and
// the patching card's class B show the same.
var classOptions struct {
	model *session.Model
	names []string
	html  string
}

// classOptionsHTML is one <option> per class of m, its value the class's
// index and its label "index · name".
func classOptionsHTML(m *session.Model, names []string) string {
	c := &classOptions
	if m == nil {
		return ""
	}
	if c.model == m && sameSlice(c.names, names) {
		return c.html
	}
	var b strings.Builder
	for i := range names {
		n := strconv.Itoa(i)
		b.WriteString(`<option value="`)
		b.WriteString(n)
		b.WriteString(`">`)
		b.WriteString(n)
		b.WriteString(" · ")
		b.WriteString(html.EscapeString(m.ClassName(i)))
		b.WriteString("</option>")
	}
	c.model, c.names, c.html = m, names, b.String()
	return c.html
}

// sameSlice says a and b are the same slice (not merely equal): a class
// list replaced by SetClasses is a new slice.
func sameSlice(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// selectedClass reads a class menu's value from its change event, which a
// handler on an element around the menu receives.
func selectedClass(e app.Event) (int, bool) {
	t := e.Get("target")
	if !t.Truthy() {
		return 0, false
	}
	n, err := strconv.Atoi(t.Get("value").String())
	return n, err == nil
}
