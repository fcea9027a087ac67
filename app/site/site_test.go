package site

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/andybalholm/brotli"
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

// The origin server compresses what go-app's handler answers (app.js,
// wasm_exec.js, the page), as the client accepts, and leaves the rest alone.
func TestCompressPages(t *testing.T) {
	script := strings.Repeat("function f() { return 1 }\n", 200)
	files := fstest.MapFS{
		"index.html":           &fstest.MapFile{Data: []byte("<p>tiny</p>")},
		"app.js":               &fstest.MapFile{Data: []byte(script)},
		"app-worker.js":        &fstest.MapFile{Data: []byte("self.x = 1")},
		"wasm_exec.js":         &fstest.MapFile{Data: []byte("")},
		"manifest.webmanifest": &fstest.MapFile{Data: []byte("{}")},
		"app.css":              &fstest.MapFile{Data: []byte("")},
	}
	pages, err := StaticPages(files, "v1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Pages: pages, Version: "v1", CompressPages: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, accept, range_, enc string
	}{
		{"/app.js", "gzip, deflate, br", "", "br"},
		{"/app.js", "gzip", "", "gzip"},
		{"/app.js", "br;q=0", "", ""},
		{"/app.js", "br", "bytes=0-9", ""},
		{"/", "br", "", ""}, // under 512 bytes: not worth it
		{"/missing", "br", "", ""},
	} {
		req := httptest.NewRequest(http.MethodGet, c.path, nil)
		req.Header.Set("Accept-Encoding", c.accept)
		if c.range_ != "" {
			req.Header.Set("Range", c.range_)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if got := rec.Header().Get("Content-Encoding"); got != c.enc {
			t.Errorf("%s (%q, range %q): Content-Encoding %q, want %q", c.path, c.accept, c.range_, got, c.enc)
			continue
		}
		body := rec.Body.Bytes()
		switch c.enc {
		case "br":
			body, err = io.ReadAll(brotli.NewReader(bytes.NewReader(body)))
		case "gzip":
			var zr *gzip.Reader
			if zr, err = gzip.NewReader(bytes.NewReader(body)); err == nil {
				body, err = io.ReadAll(zr)
			}
		}
		if err != nil {
			t.Fatalf("%s: decoding %s: %v", c.path, c.enc, err)
		}
		if c.path == "/app.js" && c.range_ == "" && string(body) != script {
			t.Errorf("%s (%q): body changed by the round trip", c.path, c.accept)
		}
		if c.enc != "" && rec.Header().Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
			t.Errorf("%s: Content-Length %s for %d bytes", c.path, rec.Header().Get("Content-Length"), rec.Body.Len())
		}
		if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "'wasm-unsafe-eval'") {
			t.Errorf("%s: no CSP", c.path)
		}
	}
}

// A brotli form made at build time (NAME.br) is served as NAME's, but only
// when it decodes to NAME; it is never published under its own name.
func TestPrecompressedBrotli(t *testing.T) {
	raw := []byte(strings.Repeat("(module (func $f (result i32) i32.const 42))\n", 400))
	compress := func(data []byte) []byte {
		var out bytes.Buffer
		w := brotli.NewWriterLevel(&out, 11)
		w.Write(data)
		w.Close()
		return out.Bytes()
	}
	good, stale := compress(raw), compress(append([]byte("older build "), raw...))
	for _, c := range []struct {
		name     string
		br       []byte
		prebuilt bool
	}{{"matching", good, true}, {"stale", stale, false}, {"corrupt", good[:len(good)/2], false}} {
		web := fstest.MapFS{
			"app.wasm":    &fstest.MapFile{Data: raw},
			"app.wasm.br": &fstest.MapFile{Data: c.br},
		}
		a, err := loadAssets(web, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if a.files["app.wasm.br"] != nil {
			t.Errorf("%s: app.wasm.br is published as a file", c.name)
		}
		a.compressAll(nil)
		a.WaitCompressed()
		f := a.files["app.wasm"]
		if f.prebuilt != c.prebuilt {
			t.Errorf("%s: prebuilt %v, want %v", c.name, f.prebuilt, c.prebuilt)
		}
		req := httptest.NewRequest(http.MethodGet, "/web/app.wasm", nil)
		req.Header.Set("Accept-Encoding", "br")
		rec := httptest.NewRecorder()
		a.serve(rec, req, "app.wasm", "no-cache")
		if rec.Header().Get("Content-Encoding") != "br" {
			t.Fatalf("%s: not served as brotli", c.name)
		}
		if c.prebuilt && !bytes.Equal(rec.Body.Bytes(), good) {
			t.Errorf("%s: the build's brotli form is not the one served", c.name)
		}
		got, err := io.ReadAll(brotli.NewReader(rec.Body))
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("%s: served brotli does not decode to app.wasm (%v)", c.name, err)
		}
	}
}
