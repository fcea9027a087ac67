package app

import (
	"fmt"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/figure"
	"vitlens/app/session"
	"vitlens/vit"
	"vitlens/vit/lens"
)

// CurveView plots the target's identifiability over blocks for [CLS] and
// the mean of the image tokens, the unperturbed run dashed when there is an
// intervention.
type CurveView struct {
	app.Compo
	A    *session.Analysis
	Site vit.Site
	// Tuned: the other views read through the tuned lens (the curve shows
	// both lenses whenever one is loaded, the chosen one solid).
	Tuned bool
}

func (cv *CurveView) Render() app.UI {
	a := cv.A
	c := a.Model.Model.Config
	var series []figure.Series
	if a.Tuned != nil {
		plain, tuned := a.Current(), a.Tuned
		if a.TunedAfter != nil {
			tuned = a.TunedAfter
		}
		series = append(identSeries(c, plain, cv.Site, " plain lens", cv.Tuned),
			identSeries(c, tuned, cv.Site, " tuned lens", !cv.Tuned)...)
	} else if a.After != nil {
		series = append(identSeries(c, a.Base, cv.Site, " before", true),
			identSeries(c, a.After, cv.Site, " after", false)...)
	} else {
		series = identSeries(c, a.Base, cv.Site, "", false)
	}
	title := fmt.Sprintf("Identifiability of %s at %s (1 − rank/%d)", a.Model.ClassName(a.Base.Target), cv.Site, c.Classes)
	return card("vl-curve", "", "Identifiability over blocks", []app.UI{
		exportButton("PNG", "png:fig-curve", "Save the curve as PNG"),
		exportButton("CSV", "curve", "The curve as CSV"),
	}, figureBox("fig-curve", figure.Curve(title, series)))
}

// identSeries are the [CLS] (when the model has one) and mean image-token
// identifiability curves of run, named with suffix, dashed or not.
func identSeries(c vit.Config, run *lens.Result, site vit.Site, suffix string, dashed bool) []figure.Series {
	cls, img := session.Curve(run, c, site)
	var out []figure.Series
	if cls != nil {
		out = append(out, figure.Series{Name: "[CLS]" + suffix, Values: cls, Colour: figure.Accent, Dashed: dashed})
	}
	return append(out, figure.Series{Name: "image tokens" + suffix, Values: img, Colour: figure.Teal, Dashed: dashed})
}
