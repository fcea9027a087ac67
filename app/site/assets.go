package site

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/andybalholm/brotli"
)

// asset is one file under /web/, held in memory with its compressed forms.
type asset struct {
	name, mime, etag string
	raw              []byte

	mu   sync.RWMutex
	enc  map[string][]byte // "br", "gzip": filled in the background
	wait sync.WaitGroup
	// prebuilt: enc["br"] came from the build (NAME.br beside NAME, see
	// addPrecompressed), so the background work makes only gzip.
	prebuilt bool
}

// assets is the whole /web/ tree. Lookups are exact names in a map: no
// request path ever reaches a file system.
type assets struct {
	files map[string]*asset
}

// mimeTypes are the types served; anything else is application/octet-stream.
// The wasm type matters: WebAssembly.instantiateStreaming refuses others.
var mimeTypes = map[string]string{
	".wasm": "application/wasm", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8", ".json": "application/json",
	".webmanifest": "application/manifest+json", ".svg": "image/svg+xml", ".png": "image/png",
	".ico": "image/x-icon", ".txt": "text/plain; charset=utf-8", ".csv": "text/csv; charset=utf-8",
	".safetensors": "application/octet-stream",
}

// compressible lists the types worth compressing (PNGs already are; the
// demo model's float32 weights lose 8% to brotli).
var compressible = map[string]bool{".wasm": true, ".js": true, ".mjs": true, ".css": true, ".html": true,
	".json": true, ".webmanifest": true, ".svg": true, ".txt": true, ".csv": true, ".safetensors": true}

// MimeType is the Content-Type served for a file name.
func MimeType(name string) string {
	if t, ok := mimeTypes[strings.ToLower(path.Ext(name))]; ok {
		return t
	}
	return "application/octet-stream"
}

// servable says whether a file of the web tree is published: Go sources
// (the embedding package's own) and hidden files are not.
func servable(name string) bool {
	base := path.Base(name)
	return !strings.HasSuffix(base, ".go") && !strings.HasPrefix(base, ".") && !strings.HasPrefix(base, "_")
}

// loadAssets reads web, and demo (when not nil) as if it were web's folder
// demoDir.
func loadAssets(web, demo fs.FS, demoDir string) (*assets, error) {
	a := &assets{files: map[string]*asset{}}
	if err := a.add(web, ""); err != nil {
		return nil, err
	}
	if demo != nil {
		if err := a.add(demo, demoDir+"/"); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (a *assets) add(fsys fs.FS, prefix string) error {
	var precompressed []string
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() || !servable(name) {
			return nil
		}
		if strings.HasSuffix(name, ".br") {
			precompressed = append(precompressed, name)
			return nil
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		name = prefix + name
		a.files[name] = &asset{name: name, mime: MimeType(name), raw: data,
			etag: `"` + hex.EncodeToString(sum[:12]) + `"`, enc: map[string][]byte{}}
		return nil
	})
	if err != nil {
		return fmt.Errorf("web assets: %w", err)
	}
	for _, name := range precompressed {
		a.addPrecompressed(fsys, name, prefix)
	}
	return nil
}

// addPrecompressed takes NAME.br, made at build time at brotli's highest
// level (make wasm: 12% smaller than the level 9 the server can afford at
// start-up, for app.wasm), as NAME's brotli form, but only if it decodes to
// exactly NAME's bytes: a stale one from an earlier build is ignored.
func (a *assets) addPrecompressed(fsys fs.FS, name, prefix string) {
	f := a.files[prefix+strings.TrimSuffix(name, ".br")]
	if f == nil {
		return
	}
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return
	}
	decoded, err := io.ReadAll(io.LimitReader(brotli.NewReader(bytes.NewReader(data)), int64(len(f.raw))+1))
	if err != nil || !bytes.Equal(decoded, f.raw) {
		return
	}
	f.enc["br"], f.prebuilt = data, true
}

// compressAll makes gzip and brotli forms of the compressible files in the
// background; until one is ready the file is served uncompressed. Brotli
// level 9 takes about 3 s for a 11 MB app.wasm on one core and saves ~18%
// over gzip; level 11 would take a minute.
func (a *assets) compressAll(logf func(string, ...any)) {
	for _, f := range a.files {
		if !compressible[strings.ToLower(path.Ext(f.name))] || len(f.raw) < 512 {
			continue
		}
		f.wait.Add(1)
		go func() {
			defer f.wait.Done()
			start := time.Now()
			gz := encode("gzip", f.raw)
			f.set("gzip", gz)
			if f.prebuilt {
				return
			}
			br := encode("br", f.raw)
			f.set("br", br)
			if logf != nil && len(f.raw) > 1<<20 {
				logf("compressed %s: %d bytes, gzip %d, brotli %d (%v)", f.name, len(f.raw), len(gz), len(br),
					time.Since(start).Round(time.Millisecond))
			}
		}()
	}
}

// encode compresses data as Content-Encoding enc ("br" or "gzip"), at the
// levels a server can afford: brotli 9 (about 3 s for an 11 MB app.wasm on
// one core; 11 would take a minute) and gzip's best.
func encode(enc string, data []byte) []byte {
	var out bytes.Buffer
	if enc == "br" {
		bw := brotli.NewWriterLevel(&out, 9)
		bw.Write(data)
		bw.Close()
	} else {
		zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
		zw.Write(data)
		zw.Close()
	}
	return out.Bytes()
}

// WaitCompressed blocks until every compressed form is ready (tests).
func (a *assets) WaitCompressed() {
	for _, f := range a.files {
		f.wait.Wait()
	}
}

func (f *asset) set(enc string, data []byte) {
	// Keep a form only when it is smaller.
	if len(data) >= len(f.raw) {
		return
	}
	f.mu.Lock()
	f.enc[enc] = data
	f.mu.Unlock()
}

// pick chooses the best representation the client accepts. Range requests
// get the identity form so byte offsets mean what the client expects.
func (f *asset) pick(r *http.Request) (string, []byte) {
	if r.Header.Get("Range") != "" {
		return "", f.raw
	}
	accept := r.Header.Get("Accept-Encoding")
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, enc := range []string{"br", "gzip"} {
		if data, ok := f.enc[enc]; ok && acceptsEncoding(accept, enc) {
			return enc, data
		}
	}
	return "", f.raw
}

// acceptsEncoding reads an Accept-Encoding header, honouring q=0.
func acceptsEncoding(header, enc string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), enc) {
			continue
		}
		params = strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return !(params == "q=0" || params == "q=0.0" || params == "q=0.00" || params == "q=0.000")
	}
	return false
}

func (a *assets) serve(w http.ResponseWriter, r *http.Request, name, cache string) {
	f := a.files[name]
	if f == nil || !fs.ValidPath(name) {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.mime)
	h.Set("Cache-Control", cache)
	h.Set("Accept-Ranges", "bytes")
	if compressible[strings.ToLower(path.Ext(name))] {
		h.Set("Vary", "Accept-Encoding")
	}
	enc, data := f.pick(r)
	etag := f.etag
	if enc != "" {
		h.Set("Content-Encoding", enc)
		etag = strings.TrimSuffix(etag, `"`) + "-" + enc + `"`
	}
	h.Set("ETag", etag)
	// ServeContent answers HEAD, Range and If-None-Match.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}
