package app

import (
	"math"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/figure"
	"vitlens/app/session"
	"vitlens/vit"
)

// AttentionView shows where the selected token attends, per block and head.
type AttentionView struct {
	app.Compo
	A     *session.Analysis
	Token int
	// Rows are the token's weights in the run shown, which the engine
	// sends a token at a time (actAttention asks); Err says why there are
	// none. Neither: not here yet.
	Rows *session.AttentionRows
	Err  string

	keys gridCursor // rows are blocks, columns heads then their mean
}

// OnMount and OnUpdate ask for the rows of the token shown when the page
// lacks them.
func (av *AttentionView) OnMount(ctx app.Context) { av.askRows(ctx) }

func (av *AttentionView) OnUpdate(ctx app.Context) { av.askRows(ctx) }

func (av *AttentionView) askRows(ctx app.Context) {
	if a := av.A; a != nil && av.Rows == nil && av.Err == "" && session.Position(a.Current(), av.Token) >= 0 {
		ctx.NewActionWithValue(actAttention, attentionWanted{a: a, token: av.Token})
	}
}

func (av *AttentionView) Render() app.UI {
	a := av.A
	c := a.Model.Model.Config
	r := a.Current()
	label := session.TokenLabel(c, av.Token)
	tools := []app.UI{
		exportButton("PNG", "png:fig-attention", "Save the attention maps as PNG"),
		exportButton("CSV", "attention", "Every attention weight of this token as CSV"),
	}
	pos := session.Position(r, av.Token)
	if pos < 0 {
		return card("vl-attention", "", "Attention of "+label, tools, app.P().Class("vl-hint").Text(label+" was dropped."))
	}
	if av.Err != "" {
		return card("vl-attention", "", "Attention of "+label, tools, app.P().Class("vl-hint").Text(av.Err))
	}
	rows := av.Rows
	if rows == nil {
		return card("vl-attention", "", "Attention of "+label, tools, app.P().Class("vl-hint").Text("Reading the attention of "+label+"…"))
	}
	g := c.GridSize()
	first := c.FirstImageToken()
	am := figure.AttentionMaps{Grid: g, Query: av.Token - first}
	if c.ClassToken {
		am.CLS = make([][]float32, c.Depth)
	}
	for b := range rows.Depth {
		heads := rows.Block(b)
		row := make([][]float32, len(heads))
		for h, w := range heads {
			m := make([]float32, g*g)
			for i := range m {
				m[i] = float32(math.NaN())
			}
			for kp, t := range rows.Keys {
				if t >= first {
					m[t-first] = w[kp]
				} else if c.TokenKind(t) == vit.KindCLS && am.CLS != nil {
					if am.CLS[b] == nil {
						am.CLS[b] = make([]float32, len(heads))
					}
					am.CLS[b][h] = w[kp]
				}
			}
			row[h] = m
		}
		am.Weights = append(am.Weights, row)
	}
	am.Title = "Attention of " + label + " to the patches"
	hint := "Rows are blocks, columns heads; each map is scaled to its own maximum. "
	if c.ClassToken {
		hint += "Hover a map for its weight on [CLS]. "
	}
	hint += "Click a patch of the image or a cell of the heat-map to choose the token."
	said := ""
	if av.keys.on {
		av.keys.row, av.keys.col = min(av.keys.row, c.Depth-1), min(av.keys.col, c.Heads)
		am.Cursor = &[2]int{av.keys.row, av.keys.col}
		said = am.Tip(av.keys.row, av.keys.col)
	}
	return card("vl-attention", "", "Attention of "+label, tools,
		app.P().Class("vl-hint").Text(hint),
		keyGrid(app.Div().Class("vl-scroll"), "Attention maps, rows are blocks and columns heads: arrow keys move between maps").
			OnKeyDown(av.onKey).OnFocus(av.onFocus).OnBlur(av.onBlur).
			Body(figureBox("fig-attention", am.SVG())),
		srOnly("vl-attention-said", said))
}

func (av *AttentionView) onKey(ctx app.Context, e app.Event) {
	c := av.A.Model.Model.Config
	if _, ok := av.keys.key(e.Get("key").String(), c.Depth, c.Heads+1); !ok {
		ctx.PreventUpdate()
	}
}

func (av *AttentionView) onFocus(ctx app.Context, e app.Event) {
	av.keys.focus(ctx, av.A.Model.Model.Config.Depth-1, 0)
}

func (av *AttentionView) onBlur(ctx app.Context, e app.Event) { av.keys.blur() }
