// Package pwa is the go-app side of serving: the app.Handler that makes the
// page a progressive web app (icons, manifest, service worker for offline
// use, app.wasm loading with progress), the static shell the server renders
// in place of the app, and the static-site writer. It wraps app/site, which
// stays free of go-app so the Cloudflare Worker does not carry it.
package pwa

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/site"
	"vitlens/public"
)

// Handler configures go-app for vitlens at a given version; wasmSize is
// app.wasm's uncompressed size, for the loading progress.
func Handler(version string, wasmSize int64) *app.Handler {
	routeOnce.Do(func() { app.Route("/", func() app.Composer { return &Shell{} }) })
	h := &app.Handler{
		Name:        "vitlens",
		ShortName:   "vitlens",
		Title:       "vitlens · ViT class-embedding lens",
		Description: "Look inside Vision Transformers through their class embeddings (Vilas et al., NeurIPS 2023), entirely in your browser.",
		Lang:        "en",
		// Local icons: go-app's defaults are fetched from GitHub, which
		// breaks offline use.
		Icon: app.Icon{
			Default:  "/web/icon-192.png",
			Large:    "/web/icon-512.png",
			Maskable: "/web/icon-512.png",
			SVG:      "/web/icon.svg",
		},
		BackgroundColor: "#f8fafc",
		ThemeColor:      "#4f46e5",
		LoadingLabel:    "Loading vitlens… {progress}%",
		Styles:          []string{"/web/vitlens.css"},
		// Not deferred, so it runs before go-app's loader and starts the
		// engine's worker with the page's compiled app.wasm (see the
		// script); go-app's service worker precaches scripts.
		Scripts: []string{"/web/boot.js"},
		// app.wasm's download starts with the page's, not once go-app's
		// deferred loader has run (the loader's fetch takes this response).
		RawHeaders: []string{`<link rel="preload" href="` + versioned{version}.Resolve("/web/app.wasm") +
			`" as="fetch" type="application/wasm" crossorigin="anonymous">`},
		// The header's logo (go-app precaches the PNG icons, not the SVG),
		// the engine's worker script, and the demo model and samples the
		// page fetches on start.
		CacheableResources: append([]string{"/web/icon.svg", "/web/engine.js", "/web/gemm-worker.js"}, demoResources()...),
		Version:            version,
		Resources:          versioned{version},
	}
	if wasmSize > 0 {
		// Progress counts bytes after decompression, so it must be measured
		// against the uncompressed size, not Content-Length.
		h.WasmContentLength = strconv.FormatInt(wasmSize, 10)
	}
	return h
}

var routeOnce sync.Once

// demoResources are the URLs of the demo files the page reads (the model and
// the samples with their index), for the service worker to precache, so the
// demo works offline.
func demoResources() []string {
	var out []string
	add := func(name string) { out = append(out, "/web/"+public.DemoWebDir+"/"+name) }
	add(public.DemoModel)
	add(public.SamplesIndex)
	entries, _ := fs.ReadDir(public.Files, public.SamplesDir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".png") {
			add(path.Join(public.SamplesDir, e.Name()))
		}
	}
	return out
}

// versioned resolves /web/ files to URLs carrying the version, which
// app/site caches for a year: every build gets new URLs.
type versioned struct{ version string }

func (v versioned) Resolve(loc string) string {
	if strings.HasPrefix(loc, "/web/") && len(loc) > len("/web/") {
		return loc + "?v=" + v.version
	}
	return loc
}

// New serves the app from web (app.wasm and the assets) with go-app
// rendering the page.
func New(web fs.FS, logf func(string, ...any)) (*site.Site, error) {
	version, size, err := site.VersionOf(web)
	if err != nil {
		return nil, err
	}
	return site.New(site.Config{Web: web, Demo: public.Files, DemoDir: public.DemoWebDir,
		Pages: Handler(version, size), Version: version, Logf: logf, CompressPages: true})
}

// WriteStatic writes the app as a static site into dir: go-app's page and
// PWA files, web/ with app.wasm and the assets, and a _headers file with the
// security and cache policy for hosts that read one (Cloudflare, Netlify).
// Static hosts must serve .wasm as application/wasm.
func WriteStatic(dir string, web fs.FS) (version string, err error) {
	version, size, err := site.VersionOf(web)
	if err != nil {
		return "", err
	}
	files, err := site.PublicFiles(web, public.Files, public.DemoWebDir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := app.GenerateStaticWebsite(dir, Handler(version, size)); err != nil {
		return "", fmt.Errorf("static site %s: %w", dir, err)
	}
	for name, data := range files {
		dst := filepath.Join(dir, "web", filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return "", err
		}
	}
	return version, os.WriteFile(filepath.Join(dir, "_headers"), []byte(site.HeadersFile()), 0o644)
}
