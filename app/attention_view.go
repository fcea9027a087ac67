package app

import (
	"math"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/figure"
	"vitlens/app/session"
)

// AttentionView shows where the selected token attends, per block and head.
type AttentionView struct {
	app.Compo
	A     *session.Analysis
	Token int
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
	g := c.GridSize()
	first := c.FirstImageToken()
	am := figure.AttentionMaps{Grid: g, Query: av.Token - first}
	if c.ClassToken {
		am.CLS = make([][]float32, c.Depth)
	}
	for b := 0; b < c.Depth; b++ {
		heads, err := session.Attention(r.Trace, c, b, pos)
		if err != nil {
			return card("vl-attention", "", "Attention of "+label, tools, app.P().Class("vl-hint").Text(err.Error()))
		}
		row := make([][]float32, len(heads))
		for h, w := range heads {
			m := make([]float32, g*g)
			for i := range m {
				m[i] = float32(math.NaN())
			}
			for kp, t := range r.Tokens {
				if t >= first {
					m[t-first] = w[kp]
				} else if am.CLS != nil {
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
	return card("vl-attention", "", "Attention of "+label, tools,
		app.P().Class("vl-hint").Text(hint),
		app.Div().Class("vl-scroll").Body(figureBox("fig-attention", am.SVG())))
}
