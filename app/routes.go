package app

import "github.com/maxence-charriere/go-app/v10/pkg/app"

// Register routes the app's single page. The wasm entry point calls it; the
// server routes the same path to a static shell (app/site) so the served
// binary does not carry the analysis engine.
func Register() {
	app.Route("/", func() app.Composer { return &Page{} })
}
