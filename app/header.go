package app

import (
	"fmt"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// Header is the top bar: name, what runs the analysis and how long it took.
type Header struct {
	app.Compo
	Backend, Note, Elapsed, Busy string
	// Progress is the running analysis's advance in words and Fraction
	// (0 to 1) as a bar; Running shows its Cancel button.
	Progress string
	Fraction float64
	Running  bool
}

func (h *Header) Render() app.UI {
	backend := h.Backend
	if backend == "" {
		backend = "starting…"
	}
	return app.Header().Class("vl-top").Body(
		// The busy bar: a sweep that moves by transforms only, which the
		// compositor draws without the page's thread (a sweep that
		// repainted each frame took a quarter of a core from the analysis
		// on a 2-core machine), and once the analysis's progress is known
		// a progress bar that stands still between updates. (No style
		// attribute: the site's CSP forbids inline styles.)
		app.If(h.Busy != "" && h.Progress != "", func() app.UI {
			return app.Div().Class("vl-top-bar").Aria("hidden", "true").Body(
				app.Progress().Max(1).Value(fmt.Sprintf("%.3f", h.Fraction)))
		}).ElseIf(h.Busy != "", func() app.UI {
			return app.Div().Class("vl-top-bar vl-top-bar-wait").Aria("hidden", "true").Body(app.Span())
		}),
		app.Div().Class("vl-brand").Body(
			// The URL the service worker precached (pwa.Handler), so the logo
			// shows offline too.
			app.Img().Src("/web/icon.svg?v="+app.Getenv("GOAPP_VERSION")).Alt("").Role("presentation").Class("vl-logo"),
			app.Div().Body(
				app.H1().Text("vitlens"),
				app.P().Class("vl-tagline").Text("Vision Transformers seen through their class embeddings — computed in your browser"),
			),
		),
		app.Div().Class("vl-status").Body(
			app.If(h.Busy != "", func() app.UI {
				// The spinner says the page lives until the progress does.
				return app.Span().Class("vl-busy").Aria("live", "polite").Body(
					app.If(h.Progress == "", func() app.UI { return app.Span().Class("vl-spinner vl-spinner-sm") }),
					app.Text(h.Busy),
					app.If(h.Progress != "", func() app.UI {
						return app.Span().ID("vl-progress").Class("vl-progress-text").Text(" " + h.Progress)
					}))
			}),
			app.If(h.Running, func() app.UI {
				return app.Button().ID("vl-cancel").Class("vl-chip").Title("Stop this analysis; what is shown stays").
					Text("Cancel").OnClick(func(ctx app.Context, e app.Event) { ctx.NewAction(actCancel) })
			}),
			app.Span().ID("vl-backend").Class("vl-badge").Title(h.Note).Body(
				app.Span().Class("vl-badge-key").Text("backend"),
				app.Text(backend),
			),
			app.If(h.Note != "", func() app.UI {
				return app.Span().Class("vl-badge vl-badge-note").Title(h.Note).Text(shorten(h.Note, 48))
			}),
			app.If(h.Elapsed != "", func() app.UI {
				return app.Span().ID("vl-elapsed").Class("vl-badge").Body(
					app.Span().Class("vl-badge-key").Text("analysis"),
					app.Text(h.Elapsed),
				)
			}),
		),
	)
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
