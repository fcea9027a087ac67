package site

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func TestAcceptsEncoding(t *testing.T) {
	for _, c := range []struct {
		header, enc string
		want        bool
	}{
		{"gzip, deflate, br", "br", true},
		{"gzip;q=0.5", "gzip", true},
		{"br;q=0, gzip", "br", false},
		{"BR", "br", true},
		{"identity", "gzip", false},
		{"", "gzip", false},
		{"brotli", "br", false},
	} {
		if got := acceptsEncoding(c.header, c.enc); got != c.want {
			t.Errorf("acceptsEncoding(%q, %q) = %v", c.header, c.enc, got)
		}
	}
}

// The Worker's page handler: exact names only, "/" is index.html, and the
// site adds its headers.
func TestStaticPages(t *testing.T) {
	files := fstest.MapFS{}
	for _, n := range []string{"index.html", "app.js", "app-worker.js", "wasm_exec.js", "manifest.webmanifest", "app.css"} {
		files[n] = &fstest.MapFile{Data: []byte("content of " + n)}
	}
	pages, err := StaticPages(files, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Version: "v1"}); err == nil {
		t.Error("a site without pages")
	}
	s, err := New(Config{Pages: pages, Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, mime, body string
		code             int
	}{
		{"/", "text/html; charset=utf-8", "content of index.html", 200},
		{"/app-worker.js", "text/javascript; charset=utf-8", "content of app-worker.js", 200},
		{"/manifest.webmanifest", "application/manifest+json", "content of manifest.webmanifest", 200},
		{"/web/app.wasm", "", "", 404}, // the asset store serves /web/
		{"/secret", "", "", 404},
	} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		if rec.Code != c.code || (c.code == 200 && (rec.Header().Get("Content-Type") != c.mime || rec.Body.String() != c.body)) {
			t.Errorf("%s: %d %q %q", c.path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
		}
		if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "'wasm-unsafe-eval'") {
			t.Errorf("%s: no CSP", c.path)
		}
	}
	if !strings.Contains(HeadersFile(), CSP) {
		t.Error("_headers lacks the CSP")
	}
}
