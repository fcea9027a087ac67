package site

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// compressedPages compresses what the Pages handler answers (go-app's
// app.js, wasm_exec.js, manifest and page: about 40 kB raw, a third of it
// after brotli), which the /web/ asset store does not serve. The answers are
// small and the same for every request of a version, so each is buffered,
// compressed once and kept by the SHA-256 of its body.
type compressedPages struct {
	next http.Handler

	mu    sync.Mutex
	forms map[[32]byte]map[string][]byte // body hash → encoding → bytes
}

// maxCompressedPages bounds the cache: a page per route plus go-app's few
// files; past it the cache starts again (a crawler walking odd paths).
const maxCompressedPages = 256

func (c *compressedPages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	accept := r.Header.Get("Accept-Encoding")
	if r.Method != http.MethodGet || r.Header.Get("Range") != "" ||
		!(acceptsEncoding(accept, "br") || acceptsEncoding(accept, "gzip")) {
		c.next.ServeHTTP(w, r)
		return
	}
	rec := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
	c.next.ServeHTTP(rec, r)
	h := w.Header()
	for k, v := range rec.header {
		h[k] = v
	}
	body := rec.body.Bytes()
	typ, _, _ := strings.Cut(rec.header.Get("Content-Type"), ";")
	if rec.status != http.StatusOK || len(body) < 512 || rec.header.Get("Content-Encoding") != "" ||
		!compressibleType(strings.TrimSpace(typ)) {
		w.WriteHeader(rec.status)
		w.Write(body)
		return
	}
	enc := "gzip"
	if acceptsEncoding(accept, "br") {
		enc = "br"
	}
	data := c.form(body, enc)
	h.Add("Vary", "Accept-Encoding")
	if len(data) >= len(body) {
		w.WriteHeader(rec.status)
		w.Write(body)
		return
	}
	h.Set("Content-Encoding", enc)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	if etag := h.Get("ETag"); etag != "" {
		h.Set("ETag", strings.TrimSuffix(etag, `"`)+"-"+enc+`"`)
	}
	w.WriteHeader(rec.status)
	w.Write(data)
}

// form returns body in encoding enc, compressing it on first use.
func (c *compressedPages) form(body []byte, enc string) []byte {
	key := sha256.Sum256(body)
	c.mu.Lock()
	if data, ok := c.forms[key][enc]; ok {
		c.mu.Unlock()
		return data
	}
	c.mu.Unlock()
	data := encode(enc, body)
	c.mu.Lock()
	if c.forms == nil || len(c.forms) >= maxCompressedPages {
		c.forms = map[[32]byte]map[string][]byte{}
	}
	if c.forms[key] == nil {
		c.forms[key] = map[string][]byte{}
	}
	c.forms[key][enc] = data
	c.mu.Unlock()
	return data
}

// compressibleType says whether a Content-Type (without parameters) is
// text worth compressing; binary answers (images) already are compressed.
func compressibleType(typ string) bool {
	typ = strings.ToLower(typ)
	return strings.HasPrefix(typ, "text/") || strings.HasSuffix(typ, "json") ||
		strings.HasSuffix(typ, "javascript") || typ == "image/svg+xml" || typ == "application/wasm"
}

// bufferedResponse holds an answer until it is known whether to compress it.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if !b.wrote {
		b.status, b.wrote = status, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}
