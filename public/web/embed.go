// Package web holds the web app's static assets, served under /web/: the
// stylesheet, the icons and app.wasm, which the build writes here (make
// wasm) before the server that embeds this folder is compiled. Without
// app.wasm the server starts only with --web DIR.
package web

import "embed"

// Files is this folder; the server publishes its non-Go files.
//
//go:embed *
var Files embed.FS
