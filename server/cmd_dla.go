package main

import (
	"encoding/csv"
	"fmt"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/dla"
	"vitlens/vit/lens"
	"vitlens/vit/patching"
	"vitlens/vit/preprocess"
	"vitlens/vit/results"
)

func init() {
	register("dla", "direct logit attribution: each head, MLP and embedding's share of a class's logit", runDLA)
}

func runDLA(args []string, stdout io.Writer) error {
	fs := newFlags("dla", "IMAGE")
	var mf modelFlags
	mf.register(fs)
	target := fs.Int("target", -2, "class to attribute: -2 the prediction, or a class index")
	token := fs.Int("token", 0, "sequence position read through the final norm and head (0 is [CLS], whose logit is the model's; others are read through the lens); ignored for mean-pooled models")
	bySource := fs.Bool("by-source", false, "also split each head's share over its tokens of origin")
	out := fs.String("out", "", "folder for dla.csv and dla-heads.png (heads × blocks); default: print only")
	top := fs.Int("top", 10, "parts printed, largest |share| first")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	b, err := mf.open(os.Stderr)
	if err != nil {
		return err
	}
	if err := dla.Check(b.Model.Config); err != nil {
		return err
	}
	x, err := loadImage(b, fs.Arg(0))
	if err != nil {
		return err
	}
	c := b.Model.Config
	if *target == -2 {
		tr, err := b.Model.Forward(x, vit.Options{})
		if err != nil {
			return err
		}
		*target = argmax(tr.Logits)
	}
	if *target < 0 || *target >= c.Classes {
		return fmt.Errorf("-target must be -2 or a class index in 0..%d, got %d", c.Classes-1, *target)
	}
	r, err := dla.Compute(b.Model, x, dla.Options{Target: *target, Token: *token, BySource: *bySource})
	if err != nil {
		return fmt.Errorf("-token: %w", err)
	}
	fmt.Fprintf(stdout, "%s: class %d (%s), logit %.4f = parts %.4f + head bias term %.4f (final norm's scale frozen at σ = %.4f)\n",
		fs.Arg(0), *target, b.Classes[*target], r.Logits[*target], r.Total()-r.Bias, r.Bias, r.Sigma)
	parts := append([]dla.Part(nil), r.Parts...)
	sort.SliceStable(parts, func(i, j int) bool { return math.Abs(parts[i].Logit) > math.Abs(parts[j].Logit) })
	n := 0
	for _, p := range parts {
		if p.Source >= 0 {
			continue
		}
		if n == *top {
			break
		}
		n++
		fmt.Fprintf(stdout, "  %-22s %+9.4f\n", partName(p), p.Logit)
	}
	fmt.Fprintf(stdout, "heads × blocks (rows: blocks 0..%d, columns: heads 0..%d):\n", c.Depth-1, c.Heads-1)
	grid := r.HeadGrid(c)
	for blk, row := range grid {
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
	rows := [][]string{{"image", "target", "token", "kind", "block", "head", "source", "logit"}}
	row := func(kind string, block, head, source int, v float64) {
		rows = append(rows, []string{fs.Arg(0), strconv.Itoa(*target), strconv.Itoa(r.Token), kind,
			strconv.Itoa(block), strconv.Itoa(head), strconv.Itoa(source), strconv.FormatFloat(v, 'g', 8, 64)})
	}
	for _, p := range r.Parts {
		row(string(p.Kind), p.Block, p.Head, p.Source, p.Logit)
	}
	row("bias", -1, -1, -1, r.Bias)
	if err := writeCSV(filepath.Join(*out, "dla.csv"), rows); err != nil {
		return err
	}
	if err := results.WriteFile(filepath.Join(*out, "dla-heads.png"), func(w io.Writer) error {
		return png.Encode(w, patching.GridImage(grid, 24))
	}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "dla: -> %s (dla.csv, dla-heads.png: rows blocks, columns heads, red adds to the logit)\n", *out)
	return nil
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

// writeCSV writes rows (the header first) atomically.
func writeCSV(path string, rows [][]string) error {
	return results.WriteFile(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.WriteAll(rows)
		return cw.Error()
	})
}
