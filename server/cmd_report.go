package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"vitlens/vit/figures"
)

func init() {
	register("report", "the paper's figures and summary tables of results folders, as one HTML page: vitlens report RESULTS...", runReport)
}

func runReport(args []string, stdout io.Writer) error {
	fs := newFlags("report", "RESULTS...")
	out := fs.String("out", "report.html", "HTML file to write")
	figDir := fs.String("figures", "", "also write every figure as PNG and SVG into this folder")
	title := fs.String("title", "vitlens report", "page title")
	usePNG := fs.Bool("png", false, "inline figures as PNG instead of SVG")
	perm := fs.Int("permutations", 0, "permutation rounds for folders without summary.json (0: no permutation tests)")
	examples := fs.Int("examples", 6, "images per explainability figure")
	pairBlocks := fs.Bool("pair-blocks", false, "in the cross-model figures, average consecutive block pairs of runs twice as deep as the shallowest (the original's ViT-L against 12-block models, spec A26)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	var runs []*figures.Run
	for _, dir := range fs.Args() {
		r, err := figures.Load(dir, figures.LoadOptions{Permutation: *perm})
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	rep, err := figures.Build(runs, figures.Options{Examples: *examples, PairBlocks: *pairBlocks})
	if err != nil {
		return err
	}
	if *figDir != "" {
		if err := os.MkdirAll(*figDir, 0o755); err != nil {
			return err
		}
		n, err := rep.SaveFigures(*figDir)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "report: %d figures (PNG and SVG) -> %s\n", n, *figDir)
	}
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf, *title, *usePNG); err != nil {
		return err
	}
	if dir := filepath.Dir(*out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(*out+".tmp", buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(*out+".tmp", *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "report: %d results folders -> %s (%d KiB)\n", len(runs), *out, buf.Len()/1024)
	for _, s := range rep.Sections {
		for _, n := range s.Notes {
			fmt.Fprintf(os.Stderr, "report: skipped: %s\n", n)
		}
	}
	return nil
}
