package app

import (
	"fmt"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/figure"
	"vitlens/app/session"
	"vitlens/vit"
)

// CurveView plots the target's identifiability over blocks for [CLS] and
// the mean of the image tokens, the unperturbed run dashed when there is an
// intervention.
type CurveView struct {
	app.Compo
	A    *session.Analysis
	Site vit.Site
}

func (cv *CurveView) Render() app.UI {
	a := cv.A
	c := a.Model.Model.Config
	var series []figure.Series
	add := func(r *session.Analysis, dashed bool, suffix string) {
		run := a.Base
		if !dashed && a.After != nil {
			run = a.After
		}
		cls, img := session.Curve(run, c, cv.Site)
		if cls != nil {
			series = append(series, figure.Series{Name: "[CLS]" + suffix, Values: cls, Colour: figure.Accent, Dashed: dashed})
		}
		series = append(series, figure.Series{Name: "image tokens" + suffix, Values: img, Colour: figure.Teal, Dashed: dashed})
	}
	if a.After != nil {
		add(a, true, " before")
		add(a, false, " after")
	} else {
		add(a, false, "")
	}
	title := fmt.Sprintf("Identifiability of %s at %s (1 − rank/%d)", a.Model.ClassName(a.Base.Target), cv.Site, c.Classes)
	return card("vl-curve", "", "Identifiability over blocks", []app.UI{
		exportButton("PNG", "png:fig-curve", "Save the curve as PNG"),
		exportButton("CSV", "curve", "The curve as CSV"),
	}, figureBox("fig-curve", figure.Curve(title, series)))
}
