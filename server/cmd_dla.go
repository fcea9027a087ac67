package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/dla"
	"vitlens/vit/experiment"
	"vitlens/vit/lens"
	"vitlens/vit/patching"
	"vitlens/vit/preprocess"
	"vitlens/vit/results"
)

func init() {
	register("dla", "direct logit attribution: each head, MLP and embedding's share of a class's logit", runDLA)
}

func runDLA(args []string, stdout io.Writer) error {
	fs := newFlags("dla", "IMAGE...")
	var mf modelFlags
	mf.register(fs)
	target := fs.Int("target", -2, "class to attribute: -2 each image's prediction, or a class index")
	token := fs.Int("token", 0, "sequence position read through the final norm and head (0 is [CLS], whose logit is the model's, read with the distillation token for distilled DeiT; others are read through the lens); ignored for mean-pooled models, which read the mean")
	bySource := fs.Bool("by-source", false, "also split each head's share over its tokens of origin")
	out := fs.String("out", "", "folder for dla.csv and dla-heads.png (heads × blocks, the mean over the images); default: print only); dla.json there is what vitlens report draws")
	top := fs.Int("top", 10, "parts printed per image, largest |share| first")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	b, err := mf.open(os.Stderr)
	if err != nil {
		return err
	}
	c := b.Model.Config
	if *target != -2 && (*target < 0 || *target >= c.Classes) {
		return fmt.Errorf("-target must be -2 or a class index in 0..%d, got %d", c.Classes-1, *target)
	}
	rows := [][]string{{"image", "target", "token", "kind", "block", "head", "source", "logit"}}
	var rs []*dla.Result
	for _, path := range fs.Args() {
		r, err := attributeImage(b, path, *target, *token, *bySource)
		if err != nil {
			return err
		}
		printDLA(stdout, b.Classes, path, r, *top)
		rs = append(rs, r)
		row := func(kind string, block, head, source int, v float64) {
			rows = append(rows, []string{path, strconv.Itoa(r.Target), strconv.Itoa(r.Token), kind,
				strconv.Itoa(block), strconv.Itoa(head), strconv.Itoa(source), strconv.FormatFloat(v, 'g', 8, 64)})
		}
		for _, p := range r.Parts {
			row(string(p.Kind), p.Block, p.Head, p.Source, p.Logit)
		}
		row("bias", -1, -1, -1, r.Bias)
	}
	summary := dla.Summarize(c, fs.Args(), rs)
	mean := summary.Heads
	what := "heads × blocks"
	if fs.NArg() > 1 {
		what = fmt.Sprintf("mean over %d images, heads × blocks", fs.NArg())
	}
	fmt.Fprintf(stdout, "%s (rows: blocks 0..%d, columns: heads 0..%d):\n", what, c.Depth-1, c.Heads-1)
	for blk, row := range mean {
		fmt.Fprintf(stdout, "  %2d", blk)
		for _, v := range row {
			fmt.Fprintf(stdout, " %+8.3f", v)
		}
		fmt.Fprintln(stdout)
	}
	if *out == "" {
		return nil
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := writeCSV(filepath.Join(*out, "dla.csv"), rows); err != nil {
		return err
	}
	if err := writeEncoded(filepath.Join(*out, "dla-heads.png"), func(w io.Writer) error {
		return png.Encode(w, patching.GridImage(mean, 24))
	}); err != nil {
		return err
	}
	if err := experiment.WriteJSON(*out, dla.SummaryFile, summary); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "dla: -> %s (dla.csv, dla-heads.png: rows blocks, columns heads, red adds to the logit; %s for vitlens report)\n", *out, dla.SummaryFile)
	return nil
}

// attributeImage runs direct logit attribution of one image file; target
// -2 is the image's prediction.
func attributeImage(b *bundle.Bundle, path string, target, token int, bySource bool) (*dla.Result, error) {
	x, err := loadImage(b, path)
	if err != nil {
		return nil, err
	}
	if target == -2 {
		tr, err := b.Model.Forward(x, vit.Options{})
		if err != nil {
			return nil, err
		}
		target = argmax(tr.Logits)
	}
	r, err := dla.Compute(b.Model, x, dla.Options{Target: target, Token: token, BySource: bySource})
	if err != nil {
		return nil, fmt.Errorf("-token: %w", err)
	}
	return r, nil
}

// printDLA prints the logit's decomposition and its largest parts.
func printDLA(w io.Writer, classes []string, path string, r *dla.Result, top int) {
	fmt.Fprintf(w, "%s: class %d (%s), logit %.4f = parts %.4f + head bias term %.4f (frozen: %s)\n",
		path, r.Target, classes[r.Target], r.Logit, r.Total()-r.Bias, r.Bias, r.Frozen())
	parts := slices.DeleteFunc(slices.Clone(r.Parts), func(p dla.Part) bool { return p.Source >= 0 })
	sort.SliceStable(parts, func(i, j int) bool { return math.Abs(parts[i].Logit) > math.Abs(parts[j].Logit) })
	for _, p := range parts[:min(top, len(parts))] {
		fmt.Fprintf(w, "  %-22s %+9.4f\n", partName(p), p.Logit)
	}
}

func partName(p dla.Part) string {
	switch p.Kind {
	case dla.KindHead:
		return fmt.Sprintf("block %d head %d", p.Block, p.Head)
	case dla.KindMLP, dla.KindAttnBias:
		return fmt.Sprintf("block %d %s", p.Block, p.Kind)
	}
	return string(p.Kind)
}

// loadImage decodes and preprocesses one image file for the bundle's model.
func loadImage(b *bundle.Bundle, path string) (*vit.Tensor, error) {
	img, err := preprocess.DecodeFile(path)
	if err != nil {
		return nil, err
	}
	x, err := b.Preset.Apply(img, b.Model.Config.ImageSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return x, nil
}

func argmax(v []float32) int {
	top := make([]int32, 1)
	lens.TopK(top, v)
	return int(top[0])
}

// writeEncoded writes what encode produces to path atomically.
func writeEncoded(path string, encode func(w io.Writer) error) error {
	var buf bytes.Buffer
	if err := encode(&buf); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return results.WriteFile(path, buf.Bytes())
}

// writeCSV writes rows (the header first) atomically.
func writeCSV(path string, rows [][]string) error {
	return writeEncoded(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.WriteAll(rows)
		return cw.Error()
	})
}
