package site

import (
	"bytes"
	"io/fs"
	"net/http"
	"time"
)

// StaticPages serves the prerendered page and PWA files of a static site
// (`vitlens site`): "/" is index.html, the others are served by exact name.
// Like go-app, it asks browsers to revalidate them on every visit.
func StaticPages(files fs.FS, version string) (http.Handler, error) {
	pages := map[string][]byte{}
	for _, name := range []string{"index.html", "app.js", "app-worker.js", "wasm_exec.js", "manifest.webmanifest", "app.css"} {
		data, err := fs.ReadFile(files, name)
		if err != nil {
			return nil, err
		}
		pages["/"+name] = data
	}
	pages["/"] = pages["/index.html"]
	etag := `"` + version + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		name := r.URL.Path
		if name == "/" {
			name = "/index.html"
		}
		h.Set("Content-Type", MimeType(name))
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}), nil
}
