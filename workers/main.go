//go:build js && wasm

// Command workers runs the web app's HTTP handler (app/site) on Cloudflare
// Workers through github.com/syumai/workers. The platform's asset store
// serves /web/ (app.wasm, CSS, icons) without entering Go; this Worker
// answers the page and go-app's PWA files, prerendered natively by
// `vitlens site` (go-app cannot render without a DOM), with the same
// security and cache headers as `vitlens serve`. Build it with
// `make workers` (Makefile.web).
package main

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/syumai/workers"

	"vitlens/app/site"
)

// version is set at link time from app.wasm (Makefile.web), so that the
// caches agree with the assets uploaded beside this Worker.
var version string

//go:embed build/pages
var pages embed.FS

func main() {
	files, err := fs.Sub(pages, "build/pages")
	if err != nil {
		panic(err)
	}
	h, err := site.StaticPages(files, version)
	if err != nil {
		panic(err)
	}
	s, err := site.New(site.Config{Pages: h, Version: version})
	if err != nil {
		panic(err)
	}
	workers.Serve(headNoLength{s})
}

// headNoLength drops Content-Length from HEAD answers: syumai/workers turns
// it into a FixedLengthStream that fails when no body follows (500).
type headNoLength struct{ h http.Handler }

func (x headNoLength) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		w = headWriter{w}
	}
	x.h.ServeHTTP(w, r)
}

type headWriter struct{ http.ResponseWriter }

func (w headWriter) WriteHeader(code int) {
	w.Header().Del("Content-Length")
	w.ResponseWriter.WriteHeader(code)
}
