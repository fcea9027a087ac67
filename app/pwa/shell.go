package pwa

import "github.com/maxence-charriere/go-app/v10/pkg/app"

// Shell is what the server renders for "/": the app's frame with a loading
// note, shown until app.wasm has started and replaced it with the real page.
type Shell struct{ app.Compo }

func (s *Shell) Render() app.UI {
	return app.Div().Class("vl-app").Body(
		app.Header().Class("vl-top").Body(
			app.Div().Class("vl-brand").Body(
				app.Img().Src("/web/icon.svg").Alt("").Role("presentation").Class("vl-logo"),
				app.Div().Body(
					app.H1().Text("vitlens"),
					app.P().Class("vl-tagline").Text("Vision Transformers seen through their class embeddings — computed in your browser"),
				),
			),
		),
		app.Main().Class("vl-shell").Body(
			app.P().Text("Loading the analysis engine (WebAssembly)…"),
			app.P().Class("vl-hint").Text("vitlens runs entirely in this page: models and images never leave your computer. "+
				"It needs JavaScript and WebAssembly; WebGPU is used when the browser offers it."),
		),
	)
}
