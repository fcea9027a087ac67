package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/lens"
	"vitlens/vit/preprocess"
)

func init() {
	register("predict", "top-5 classes for images", runPredict)
}

type prediction struct {
	Image string      `json:"image"`
	Top   []classProb `json:"top"`
}

type classProb struct {
	Class int     `json:"class"`
	Logit float32 `json:"logit"`
}

func runPredict(args []string, stdout io.Writer) error {
	fs := newFlags("predict", "IMAGE...")
	var mf modelFlags
	mf.register(fs)
	asJSON := fs.Bool("json", false, `print one JSON array: [{"image": PATH, "top": [{"class": INT, "logit": FLOAT}, ...]}]`)
	k := fs.Int("k", 5, "classes per image")
	backend := fs.String("backend", "cpu", "cpu, gpu or auto (gpu when an adapter exists)")
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
	if *k < 1 || *k > b.Model.Config.Classes {
		return fmt.Errorf("-k must be in 1..%d", b.Model.Config.Classes)
	}
	be, err := openBackend(*backend, b.Model, false, os.Stderr)
	if err != nil {
		return fmt.Errorf("-backend: %w", err)
	}
	defer be.Close()
	var out []prediction
	for _, path := range fs.Args() {
		p, err := predictOne(b, be, path, *k)
		if err != nil {
			return err
		}
		out = append(out, p)
		if !*asJSON {
			fmt.Fprintf(stdout, "%s\n", path)
			for i, c := range p.Top {
				fmt.Fprintf(stdout, "  %d. %-28s class %-5d logit %8.4f\n", i+1, b.Classes[c.Class], c.Class, c.Logit)
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return nil
}

func predictOne(b *bundle.Bundle, be lens.Backend, path string, k int) (prediction, error) {
	img, err := preprocess.DecodeFile(path)
	if err != nil {
		return prediction{}, err
	}
	x, err := b.Preset.Apply(img, b.Model.Config.ImageSize)
	if err != nil {
		return prediction{}, fmt.Errorf("%s: %w", path, err)
	}
	// No lens sites: only the model's own logits are read.
	res, err := be.Analyze([]*vit.Tensor{x}, lens.Request{TopK: 1})
	if err != nil {
		return prediction{}, fmt.Errorf("%s: %w", path, err)
	}
	logits := res[0].Logits
	top := make([]int32, k)
	lens.TopK(top, logits)
	p := prediction{Image: path}
	for _, c := range top {
		p.Top = append(p.Top, classProb{Class: int(c), Logit: logits[c]})
	}
	return p, nil
}
