package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"

	"vitlens/app/pwa"
	"vitlens/app/site"
	"vitlens/public/web"
)

func init() {
	register("site", "write the web app as a static site (for any static host)", runSite)
}

func runSite(args []string, stdout io.Writer) error {
	fset := newFlags("site", "")
	out := fset.String("out", "site", "folder to write")
	webDir := fset.String("web", "", "folder with app.wasm and the web assets (default: those built into this binary)")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		fset.Usage()
		return errUsage
	}
	assets, err := webFS(*webDir)
	if err != nil {
		return err
	}
	version, err := pwa.WriteStatic(*out, assets)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "vitlens: static site (version %s) written to %s/; serve it with application/wasm for .wasm\n", version, *out)
	return nil
}

// newSite serves the web assets of a folder, or those built into the binary.
func newSite(dir string, logf func(string, ...any)) (*site.Site, error) {
	assets, err := webFS(dir)
	if err != nil {
		return nil, err
	}
	return pwa.New(assets, logf)
}

func webFS(dir string) (fs.FS, error) {
	if dir == "" {
		return web.Files, nil
	}
	// os.Root keeps every open inside dir, symlinks included.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("--web: %w", err)
	}
	return root.FS(), nil
}
