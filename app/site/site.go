// Package site serves the web app over HTTP: the static assets under /web/
// (app.wasm precompressed, cache headers keyed by version), the page and
// PWA files from a Pages handler, and security headers on every response.
//
// It does not import go-app: natively Pages is go-app's handler (package
// app/pwa), and on Cloudflare Workers it is StaticPages over the prerendered
// files, which keeps the Worker small. The server never runs the analysis;
// the page it sends is a static shell that app.wasm replaces in the browser.
package site

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
)

// Config says what to serve.
type Config struct {
	// Web holds the files served under /web/ (app.wasm, CSS, icons). Nil
	// when something in front serves them (Cloudflare's asset store).
	Web fs.FS
	// Demo holds the demo model and samples (package public's Files),
	// served as Web's folder DemoDir; nil when not served.
	Demo    fs.FS
	DemoDir string
	// Pages answers everything outside /web/: the page and go-app's files.
	Pages http.Handler
	// Version keys the long-lived caching of /web/ files requested with
	// ?v=Version; "" derives it from app.wasm (see VersionOf).
	Version string
	// Logf reports background work (compression); nil is quiet.
	Logf func(format string, args ...any)
	// CompressPages compresses Pages' answers (brotli or gzip, as the client
	// accepts), for a server that is the origin; hosts in front that
	// compress themselves (Cloudflare) leave it off.
	CompressPages bool
}

// Site is the app's HTTP handler.
type Site struct {
	version string
	pages   http.Handler
	assets  *assets
}

// ErrNoWasm says app.wasm was not built.
var ErrNoWasm = errors.New("web/app.wasm is missing: build it first (make wasm), or pass --web DIR holding app.wasm")

// VersionOf derives the version from app.wasm's content (the first 16 hex
// digits of its SHA-256, as `sha256sum app.wasm | cut -c1-16` prints), and
// returns its size.
func VersionOf(web fs.FS) (version string, size int64, err error) {
	data, err := fs.ReadFile(web, "app.wasm")
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, ErrNoWasm
	}
	if err != nil {
		return "", 0, err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8]), int64(len(data)), nil
}

// New prepares the handler. It reads every file of cfg.Web into memory and
// starts compressing them in the background.
func New(cfg Config) (*Site, error) {
	if cfg.Pages == nil {
		return nil, errors.New("site: no Pages handler")
	}
	s := &Site{version: cfg.Version, pages: cfg.Pages}
	if cfg.CompressPages {
		s.pages = &compressedPages{next: cfg.Pages}
	}
	if cfg.Web != nil {
		var err error
		if s.assets, err = loadAssets(cfg.Web, cfg.Demo, cfg.DemoDir); err != nil {
			return nil, err
		}
		if s.assets.files["app.wasm"] == nil {
			return nil, ErrNoWasm
		}
		if s.version == "" {
			if s.version, _, err = VersionOf(cfg.Web); err != nil {
				return nil, err
			}
		}
		s.assets.compressAll(cfg.Logf)
	}
	if s.version == "" {
		return nil, errors.New("site: no version and no app.wasm to derive one from")
	}
	return s, nil
}

// Version is what keys the caches.
func (s *Site) Version() string { return s.version }

// PublicFiles reads the files of web, and of demo as its folder demoDir,
// that are published under /web/ (regular files only; no Go source, no
// hidden file), for a static site.
func PublicFiles(web, demo fs.FS, demoDir string) (map[string][]byte, error) {
	a, err := loadAssets(web, demo, demoDir)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for name, f := range a.files {
		out[name] = f.raw
	}
	return out, nil
}

// ServeHTTP routes /web/ to the assets and everything else to go-app, with
// the security headers on every answer.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/web/"):
		s.serveAsset(w, r, strings.TrimPrefix(p, "/web/"))
	case p == "/robots.txt":
		s.serveAsset(w, r, "robots.txt")
	case p == "/sitemap.xml" || p == "/ads.txt":
		// go-app would fetch these from itself over the network.
		http.NotFound(w, r)
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	case strings.Contains(p, "..") || strings.Contains(p, "\\") || strings.ContainsRune(p, 0):
		http.NotFound(w, r)
	default:
		s.pages.ServeHTTP(w, r)
	}
}

func (s *Site) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	if s.assets == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	cache := "no-cache"
	if r.URL.Query().Get("v") == s.version {
		cache = "public, max-age=31536000, immutable"
	}
	s.assets.serve(w, r, name, cache)
}

// CSP is the Content-Security-Policy of every response: scripts only from
// this origin plus WebAssembly compilation; no inline script or style; any
// https origin may be fetched (models from Hugging Face and the like);
// images from data:/blob: URLs (figures, picked photos).
const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
	"img-src 'self' data: blob:; connect-src 'self' https: data: blob:; worker-src 'self'; " +
	"manifest-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; " +
	"frame-ancestors 'none'"

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// Cross-origin isolation (COOP and COEP together) lets the page share
	// memory between workers (SharedArrayBuffer); every resource the page
	// loads is its own, and models from other origins are CORS fetches, which
	// require-corp admits. Browsers that do not isolate still run the page.
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Embedder-Policy", "require-corp")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
}

// HeadersFile is the same policy in the _headers format of Cloudflare and
// Netlify static hosting, written next to the static site.
func HeadersFile() string {
	var b strings.Builder
	fmt.Fprintf(&b, "/*\n  Content-Security-Policy: %s\n  X-Content-Type-Options: nosniff\n  Referrer-Policy: no-referrer\n"+
		"  Cross-Origin-Opener-Policy: same-origin\n  Cross-Origin-Embedder-Policy: require-corp\n  Permissions-Policy: camera=(), microphone=(), geolocation=()\n", CSP)
	b.WriteString("/web/*\n  Cache-Control: no-cache\n")
	return b.String()
}

// WaitCompressed blocks until the compressed forms of every asset are ready.
func (s *Site) WaitCompressed() {
	if s.assets != nil {
		s.assets.WaitCompressed()
	}
}
