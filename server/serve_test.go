package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"

	"vitlens/app/site"
)

// fakeWeb writes a web folder: a compressible fake app.wasm, a stylesheet,
// an icon, and a secret beside it that must never be served.
func fakeWeb(t *testing.T) (dir string, wasm []byte) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "web")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString("\x00asm\x01\x00\x00\x00")
	for i := 0; b.Len() < 300<<10; i++ {
		fmt.Fprintf(&b, "func%d:local.get %d;i32.add;", i%977, i%13)
	}
	wasm = b.Bytes()
	files := map[string]string{
		"web/app.wasm":    string(wasm),
		"web/vitlens.css": strings.Repeat(".vl-card { color: red; }\n", 100),
		"web/icon.svg":    `<svg xmlns="http://www.w3.org/2000/svg"/>`,
		"web/robots.txt":  "User-agent: *\n",
		"web/embed.go":    "package web\n",
		"secret.txt":      "top secret",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A symlink out of the web folder must not be followed.
	if err := os.Symlink(filepath.Join(root, "secret.txt"), filepath.Join(dir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	return dir, wasm
}

func testSite(t *testing.T) (*site.Site, []byte) {
	t.Helper()
	dir, wasm := fakeWeb(t)
	s, err := newSite(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.WaitCompressed()
	return s, wasm
}

// listen serves h on a loopback port with the production server settings.
func listen(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(h)
	go srv.Serve(newLimitListener(ln, maxConns())) // as runServe does
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// raw sends a request line exactly as written (no client-side cleaning).
func raw(t *testing.T, addr, method, target string, header ...string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: vitlens.test\r\nConnection: close\r\n", method, target)
	for _, h := range header {
		fmt.Fprintf(conn, "%s\r\n", h)
	}
	fmt.Fprintf(conn, "\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestServeTypesAndHeaders(t *testing.T) {
	s, _ := testSite(t)
	addr := listen(t, s)
	v := s.Version()
	for _, c := range []struct{ path, mime string }{
		{"/", "text/html"},
		{"/web/app.wasm?v=" + v, "application/wasm"},
		{"/web/vitlens.css", "text/css; charset=utf-8"},
		{"/web/icon.svg", "image/svg+xml"},
		{"/robots.txt", "text/plain; charset=utf-8"},
		{"/app.js", "application/javascript"},
		{"/wasm_exec.js", "application/javascript"},
		{"/app-worker.js", "application/javascript"},
		{"/manifest.webmanifest", "application/manifest+json"},
		// The demo model and samples, fetched by the page rather than
		// carried in app.wasm.
		{"/web/demo/models/fmnist-vit.safetensors?v=" + v, "application/octet-stream"},
		{"/web/demo/samples/labels.csv?v=" + v, "text/csv; charset=utf-8"},
		{"/web/demo/samples/fmnist-test-0-ankle-boot.png?v=" + v, "image/png"},
	} {
		resp, body := raw(t, addr, "GET", c.path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.mime || len(body) == 0 {
			t.Errorf("%s: %d %q (%d bytes), want 200 %q", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), c.mime)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "'wasm-unsafe-eval'") || strings.Contains(csp, "'unsafe-inline'") || strings.Contains(csp, "'unsafe-eval'") {
			t.Errorf("%s: CSP %q", c.path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", c.path)
		}
		// Cross-origin isolation, for SharedArrayBuffer and precise timers.
		if coop, coep := resp.Header.Get("Cross-Origin-Opener-Policy"), resp.Header.Get("Cross-Origin-Embedder-Policy"); coop != "same-origin" || coep != "require-corp" {
			t.Errorf("%s: COOP %q, COEP %q; want same-origin, require-corp", c.path, coop, coep)
		}
	}
	// The page asks for versioned assets, which are cached for good; the
	// same file without the current version must be revalidated.
	_, page := raw(t, addr, "GET", "/")
	if !bytes.Contains(page, []byte("/web/vitlens.css?v="+v)) {
		t.Errorf("page does not link the versioned stylesheet")
	}
	app := func(path string) string { r, _ := raw(t, addr, "GET", path); return r.Header.Get("Cache-Control") }
	if cc := app("/web/app.wasm?v=" + v); !strings.Contains(cc, "immutable") {
		t.Errorf("versioned wasm: Cache-Control %q", cc)
	}
	if cc := app("/web/app.wasm?v=old"); cc != "no-cache" {
		t.Errorf("unversioned wasm: Cache-Control %q", cc)
	}
	resp, _ := raw(t, addr, "GET", "/web/app.wasm")
	etag := resp.Header.Get("ETag")
	if resp, _ := raw(t, addr, "GET", "/web/app.wasm", "If-None-Match: "+etag); resp.StatusCode != 304 {
		t.Errorf("If-None-Match %s: %d, want 304", etag, resp.StatusCode)
	}
}

func TestServeCompressed(t *testing.T) {
	s, wasm := testSite(t)
	addr := listen(t, s)
	decode := map[string]func(io.Reader) (io.Reader, error){
		"br":   func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil },
		"gzip": func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
		"":     func(r io.Reader) (io.Reader, error) { return r, nil },
	}
	for _, c := range []struct{ accept, want string }{
		{"gzip, deflate, br", "br"},
		{"gzip", "gzip"},
		{"br;q=0, gzip", "gzip"},
		{"identity", ""},
		{"", ""},
	} {
		var hdr []string
		if c.accept != "" {
			hdr = append(hdr, "Accept-Encoding: "+c.accept)
		}
		resp, body := raw(t, addr, "GET", "/web/app.wasm", hdr...)
		if got := resp.Header.Get("Content-Encoding"); got != c.want {
			t.Errorf("Accept-Encoding %q: got %q, want %q", c.accept, got, c.want)
			continue
		}
		if resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("no Vary header")
		}
		r, err := decode[c.want](bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(plain, wasm) {
			t.Errorf("%q: body does not decode to app.wasm (%v, %d of %d bytes)", c.want, err, len(plain), len(wasm))
		}
		if c.want != "" && len(body) > len(wasm)/2 {
			t.Errorf("%s: %d bytes for %d", c.want, len(body), len(wasm))
		}
	}
}

func TestServeHeadAndRange(t *testing.T) {
	s, wasm := testSite(t)
	addr := listen(t, s)
	resp, body := raw(t, addr, "HEAD", "/web/app.wasm")
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(wasm)) {
		t.Errorf("HEAD: %d, body %d bytes, length %d (want %d)", resp.StatusCode, len(body), resp.ContentLength, len(wasm))
	}
	if resp, body := raw(t, addr, "HEAD", "/"); resp.StatusCode != 200 || len(body) != 0 {
		t.Errorf("HEAD /: %d, %d bytes", resp.StatusCode, len(body))
	}
	// A range gets the uncompressed bytes, even when compression is accepted.
	resp, body = raw(t, addr, "GET", "/web/app.wasm", "Range: bytes=100-199", "Accept-Encoding: br, gzip")
	if resp.StatusCode != 206 || !bytes.Equal(body, wasm[100:200]) || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("range: %d, %d bytes, encoding %q", resp.StatusCode, len(body), resp.Header.Get("Content-Encoding"))
	}
	if got := resp.Header.Get("Content-Range"); got != fmt.Sprintf("bytes 100-199/%d", len(wasm)) {
		t.Errorf("Content-Range %q", got)
	}
	resp, _ = raw(t, addr, "GET", "/web/app.wasm", fmt.Sprintf("Range: bytes=%d-", len(wasm)+10))
	if resp.StatusCode != 416 {
		t.Errorf("range past the end: %d, want 416", resp.StatusCode)
	}
}

// Nothing outside the web folder, no Go source, no listing and no symlink
// target is ever served, however the path is spelled.
func TestServeTraversal(t *testing.T) {
	s, _ := testSite(t)
	addr := listen(t, s)
	for _, target := range []string{
		"/web/../secret.txt", "/web/%2e%2e/secret.txt", "/web/%2E%2E%2Fsecret.txt", "/web/..%2fsecret.txt",
		"/web/..%5csecret.txt", "/web/%2e%2e%5csecret.txt", "/%2e%2e/%2e%2e/etc/passwd", "/../../etc/passwd",
		"/web/../../../../etc/passwd", "/web/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/web/link.txt", "/web/embed.go",
		"/web/", "/web", "/web//app.wasm", "/web/./app.wasm", "/web/app.wasm%00", "/web/app.wasm/",
		"/web/%00", "//etc/passwd", "/..;/secret.txt", "/web/.%2e/secret.txt", "/secret.txt", "/etc/passwd",
		"/web/%252e%252e/secret.txt",
	} {
		resp, body := raw(t, addr, "GET", target)
		if resp.StatusCode == 200 || bytes.Contains(body, []byte("top secret")) || bytes.Contains(body, []byte("package web")) ||
			bytes.Contains(body, []byte("root:")) {
			t.Errorf("GET %s: %d, %q", target, resp.StatusCode, body[:min(len(body), 60)])
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		if resp, _ := raw(t, addr, m, "/web/app.wasm"); resp.StatusCode != 405 {
			t.Errorf("%s /web/app.wasm: %d, want 405", m, resp.StatusCode)
		}
		if resp, _ := raw(t, addr, m, "/"); resp.StatusCode != 405 {
			t.Errorf("%s /: %d, want 405", m, resp.StatusCode)
		}
	}
}

// Many concurrent clients on loopback: every request succeeds, in bounded
// time.
func TestServeLoad(t *testing.T) {
	s, wasm := testSite(t)
	addr := listen(t, s)
	const clients, each = 48, 25
	paths := []string{"/", "/web/app.wasm?v=" + s.Version(), "/app.js", "/web/vitlens.css", "/manifest.webmanifest"}
	tr := &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	var bytesRead int64
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				p := paths[(c+i)%len(paths)]
				req, _ := http.NewRequest("GET", "http://"+addr+p, nil)
				if i%2 == 0 {
					req.Header.Set("Accept-Encoding", "br, gzip")
				}
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					continue
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				bytesRead += n
				if err != nil || resp.StatusCode != 200 {
					errs = append(errs, fmt.Sprintf("%s: %d %v", p, resp.StatusCode, err))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if len(errs) > 0 {
		t.Fatalf("%d of %d requests failed, e.g. %s", len(errs), clients*each, errs[0])
	}
	if took > 30*time.Second {
		t.Fatalf("%d requests took %v", clients*each, took)
	}
	t.Logf("%d requests from %d clients in %v (%.0f req/s, %.1f MB; wasm %d bytes)", clients*each, clients, took.Round(time.Millisecond),
		float64(clients*each)/took.Seconds(), float64(bytesRead)/1e6, len(wasm))
}

func TestServeAndSiteCommands(t *testing.T) {
	var out bytes.Buffer
	if err := runServe([]string{"--web", filepath.Join(t.TempDir(), "missing")}, &out); err == nil {
		t.Error("serve with a missing --web folder started")
	}
	empty := t.TempDir()
	if err := runServe([]string{"--web", empty}, &out); err == nil || !strings.Contains(err.Error(), "app.wasm") {
		t.Errorf("serve without app.wasm: %v", err)
	}
	dir, wasm := fakeWeb(t)
	dst := filepath.Join(t.TempDir(), "site")
	if err := runSite([]string{"--web", dir, "--out", dst}, &out); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"index.html", "app.js", "app-worker.js", "wasm_exec.js", "manifest.webmanifest", "app.css", "_headers",
		"web/vitlens.css", "web/app.wasm", "web/demo/models/fmnist-vit.safetensors", "web/demo/samples/labels.csv"} {
		if _, err := os.Stat(filepath.Join(dst, name)); err != nil {
			t.Errorf("static site lacks %s", name)
		}
	}
	for _, name := range []string{"web/embed.go", "web/link.txt"} {
		if _, err := os.Stat(filepath.Join(dst, name)); err == nil {
			t.Errorf("static site publishes %s", name)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "web", "app.wasm")); !bytes.Equal(got, wasm) {
		t.Error("static app.wasm differs")
	}
	headers, _ := os.ReadFile(filepath.Join(dst, "_headers"))
	if !strings.Contains(string(headers), "wasm-unsafe-eval") || !strings.Contains(string(headers), "Cross-Origin-Embedder-Policy: require-corp") {
		t.Errorf("_headers: %s", headers)
	}
}

// With its connections capped, the server serves what it can and leaves the
// rest waiting in the accept queue instead of failing accepts near the
// open-file limit; each closed connection lets one more in.
func TestServeCapsConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	go srv.Serve(newLimitListener(ln, 2))
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	// Two idle connections hold both slots.
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(line, "200") {
			t.Fatalf("held connection: %q %v", line, err)
		}
	}
	third, err := net.Dial("tcp", addr) // the kernel completes the handshake
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	fmt.Fprintf(third, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	r := bufio.NewReader(third)
	third.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if line, err := r.ReadString('\n'); err == nil {
		t.Fatalf("a third connection was served past the cap of 2: %q", line)
	}
	held[0].Close()
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("after a slot freed: %q %v", line, err)
	}
	held[1].Close()
	if n := maxConns(); n < 8 {
		t.Errorf("maxConns %d", n)
	}
}

// --addr :PORT listens on every interface: the start message says so.
func TestServeSaysAllInterfaces(t *testing.T) {
	for addr, want := range map[string]bool{":0": true, "0.0.0.0:0": true, "127.0.0.1:0": false} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		note := listenNote(ln.Addr())
		ln.Close()
		if got := strings.Contains(note, "ALL network interfaces"); got != want {
			t.Errorf("--addr %s: note %q", addr, note)
		}
	}
}
