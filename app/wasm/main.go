// Command wasm is the web app's entry point, built with GOOS=js GOARCH=wasm
// into app.wasm (see Makefile.web). The server and the static site serve it.
package main

import (
	"github.com/maxence-charriere/go-app/v10/pkg/app"

	vitlens "vitlens/app"
)

func main() {
	// The same binary is the engine's worker (public/web/engine.js): one
	// download, cached once, for the page and its engine.
	if vitlens.InWorker() {
		vitlens.ServeEngine()
		return
	}
	vitlens.Register()
	app.RunWhenOnBrowser()
}
