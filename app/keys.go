package app

import "github.com/maxence-charriere/go-app/v10/pkg/app"

// Keyboard use of the figures. A figure's container takes the focus
// (tabindex 0, data-keys); arrow keys move a cursor drawn in the figure,
// Home/End jump to the row's ends, Enter or Space acts on the cell. The
// container is kept across renders while the SVG inside is replaced, so the
// focus survives every redraw.

// gridCursor is a keyboard cursor over a figure's rows × cols cells; on
// while the figure has the keyboard focus.
type gridCursor struct {
	row, col int
	on       bool
}

// key applies a key press; act reports Enter or Space, handled whether the
// key meant anything here.
func (c *gridCursor) key(key string, rows, cols int) (act, handled bool) {
	switch key {
	case "ArrowLeft":
		c.col--
	case "ArrowRight":
		c.col++
	case "ArrowUp":
		c.row--
	case "ArrowDown":
		c.row++
	case "Home":
		c.col = 0
	case "End":
		c.col = cols - 1
	case "Enter", " ":
		act = true
	default:
		return false, false
	}
	c.row = min(max(c.row, 0), rows-1)
	c.col = min(max(c.col, 0), cols-1)
	return act, true
}

// focus turns the cursor on when the focus came from the keyboard (a click
// focuses the container too, without a cursor), starting at row, col.
func (c *gridCursor) focus(ctx app.Context, row, col int) {
	if !ctx.JSSrc().Call("matches", ":focus-visible").Bool() {
		ctx.PreventUpdate()
		return
	}
	c.row, c.col, c.on = row, col, true
}

func (c *gridCursor) blur() { c.on = false }

// keyGrid makes el the keyboard target of a figure: focusable, named, and
// marked for listenForGridKeys.
func keyGrid(el app.HTMLDiv, label string) app.HTMLDiv {
	return el.TabIndex(0).Role("group").Aria("label", label).DataSet("keys", "grid")
}

// listenForGridKeys stops the browser from scrolling the page on arrow keys
// and Space over a figure. It is a plain JS listener because it must call
// preventDefault during the event; go-app's handlers run after it.
func listenForGridKeys() {
	fn := app.FuncOf(func(_ app.Value, args []app.Value) any {
		if len(args) == 0 {
			return nil
		}
		e := args[0]
		t := e.Get("target")
		if !t.Truthy() || t.Get("dataset").Get("keys").String() != "grid" {
			return nil
		}
		switch e.Get("key").String() {
		case "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "Enter", " ":
			e.Call("preventDefault")
		}
		return nil
	})
	app.Window().Call("addEventListener", "keydown", fn)
}

// srOnly is text for screen readers only, announced as it changes.
func srOnly(id, text string) app.UI {
	return app.P().ID(id).Class("vl-sr-only").Aria("live", "polite").Text(text)
}
