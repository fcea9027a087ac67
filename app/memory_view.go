package app

import (
	"fmt"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/session"
	"vitlens/vit/memory"
)

// MemoryView lists the selected token's most activated memories at the
// selected block, in the MLP and in attention, with the classes their value
// vectors promote (the key-value memory view of the paper).
type MemoryView struct {
	app.Compo
	A     *session.Analysis
	Block int
	Token int
	// Known counts the value classes the page has learnt: the card
	// redraws as they arrive. The page's model has no weights, so the
	// engine computes them (actMemories asks).
	Known int
}

// OnMount and OnUpdate ask for the value classes of the memories shown
// that the model does not know yet.
func (mv *MemoryView) OnMount(ctx app.Context) { mv.askClasses(ctx) }

func (mv *MemoryView) OnUpdate(ctx app.Context) { mv.askClasses(ctx) }

func (mv *MemoryView) askClasses(ctx app.Context) {
	a := mv.A
	if a == nil {
		return
	}
	r := a.Current()
	pos := session.Position(r, mv.Token)
	if pos < 0 {
		return
	}
	keys, err := a.Model.MissingClasses(a.CurrentMemories(), []int{mv.Block}, pos)
	if err == nil && len(keys) > 0 {
		ctx.NewActionWithValue(actMemories, memoriesWanted{model: a.Model, keys: keys})
	}
}

func (mv *MemoryView) Render() app.UI {
	a := mv.A
	c := a.Model.Model.Config
	r := a.Current()
	label := session.TokenLabel(c, mv.Token)
	title := fmt.Sprintf("Memories of %s at block %d", label, mv.Block+1)
	tools := []app.UI{exportButton("CSV", "memories", "This token's top memories in every block as CSV")}
	pos := session.Position(r, mv.Token)
	if pos < 0 {
		return card("vl-memories", "", title, tools, app.P().Class("vl-hint").Text(label+" was dropped."))
	}
	var tables []app.UI
	for _, l := range []memory.Layer{memory.MLP, memory.Attn} {
		mems, err := a.Model.Memories(a.CurrentMemories(), mv.Block, l, pos)
		if err != nil {
			return card("vl-memories", "", title, tools, app.P().Class("vl-hint").Text(err.Error()))
		}
		tables = append(tables, mv.table(l, mems, r.Target))
	}
	return card("vl-memories", "", title, tools,
		app.P().Class("vl-hint").Text("Keys: the token's coefficients (fc1 pre-activations for the MLP, concatenated head outputs for attention). "+
			"Values: each memory's column of the output projection, read through the classifier (E·W_out)."),
		app.Div().Class("vl-mem-cols").Body(tables...),
	)
}

func (mv *MemoryView) table(l memory.Layer, mems []session.Memory, target int) app.UI {
	name := "MLP memories"
	if l == memory.Attn {
		name = "Attention memories"
	}
	m := mv.A.Model
	return app.Table().Class("vl-mem").Body(
		app.Caption().Text(name),
		app.THead().Body(app.Tr().Body(
			app.Th().Text("memory"),
			app.Th().Text("coefficient"),
			app.Th().Text("its value promotes"),
		)),
		app.TBody().Body(app.Range(mems).Slice(func(i int) app.UI {
			mem := mems[i]
			id := fmt.Sprintf("#%d", mem.Index)
			if mem.Head >= 0 {
				id += fmt.Sprintf(" (head %d)", mem.Head+1)
			}
			var classes []app.UI
			if mem.Classes == nil {
				classes = append(classes, app.Span().Class("vl-hint vl-mem-wait").Title("asked of the engine").Text("…"))
			}
			for _, k := range mem.Classes {
				cls := "vl-tag"
				if int(k) == target {
					cls += " vl-tag-target"
				}
				classes = append(classes, app.Span().Class(cls).Text(m.ClassName(int(k))))
			}
			return app.Tr().Body(
				app.Td().Text(id),
				app.Td().Class("vl-num").Text(fmt.Sprintf("%.3f", mem.Coef)),
				app.Td().Body(classes...),
			)
		})),
	)
}
