package main

import (
	"flag"
	"fmt"
	"image"
	"io"
	"os"
	"strconv"
	"strings"

	"vitlens/vit/dataset"
	"vitlens/vit/experiment"
	"vitlens/vit/explain"
	"vitlens/vit/explain/batch"
	"vitlens/vit/preprocess"
)

func init() {
	register("explain", "explainability maps (ours and Chefer et al.) as tables and heat-map overlays", runExplain)
}

func runExplain(args []string, stdout io.Writer) error {
	fs := newFlags("explain", "[IMAGE...]")
	var rf runFlags
	rf.register(fs)
	target := fs.Int("target", batch.TargetLabel, "class to explain: -1 the label (the prediction for image files), -2 the prediction, or a class index")
	double := fs.Bool("double-softmax", false, "the original code's loss: CE(softmax(logits)) (spec A13)")
	objective := fs.String("objective", string(explain.CrossEntropy), "what each block's class-space projection is scored by: cross_entropy (the paper's map) or cat_prob (the target's projected logit; the original's other grad_type)")
	gradInput := fs.String("grad-input", string(explain.AttnProbs), "what the map differentiates: attn_probs ([CLS]'s attention, the paper's map) or key_proj_vals (each token's concatenated head outputs; the original's other input_type)")
	noChefer := fs.Bool("no-chefer", false, "skip Chefer et al.'s baseline")
	size := fs.Int("size", 224, "side of the overlay PNGs in pixels")
	perBlock := fs.Bool("per-block", false, "also draw each block's share of our map")
	perHead := fs.Bool("per-head", false, "also draw the head-specific map of every block and head (block and head 1-based in file names)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !flagSet(fs, "limit") && fs.NArg() == 0 {
		rf.limit = 16 // a dataset run draws PNGs: explain a handful unless told otherwise
	}
	if *size < 1 || *size > 4096 {
		return fmt.Errorf("-size must be in 1..4096, got %d", *size)
	}
	opt := explain.Options{DoubleSoftmax: *double, NoChefer: *noChefer,
		Objective: explain.Objective(*objective), Input: explain.Input(*gradInput)}
	if err := opt.Validate(); err != nil {
		return fmt.Errorf("-objective / -grad-input / -double-softmax: %w", err)
	}
	params := map[string]string{"target": strconv.Itoa(*target), "double_softmax": strconv.FormatBool(*double),
		"chefer": strconv.FormatBool(!*noChefer), "size": strconv.Itoa(*size), "per_block": strconv.FormatBool(*perBlock),
		"per_head": strconv.FormatBool(*perHead)}
	// Only a variant is recorded, so folders made before these flags existed
	// still resume.
	if opt.Objective != explain.CrossEntropy {
		params["objective"] = *objective
	}
	if opt.Input != explain.AttnProbs {
		params["grad_input"] = *gradInput
	}
	files, sel, fset := fileArgs(fs)
	o, err := rf.openCPUInputs("explain", files, sel, os.Stderr)
	if err != nil {
		return err
	}
	if err := o.create("explain", params, batch.ExplainTables(), append([]string{"explain"}, args...), "cpu", os.Stderr); err != nil {
		return err
	}
	defer o.close()
	fset.classes = o.bundle.Classes
	r := &batch.Explainer{Bundle: o.bundle, Data: o.data, Out: o.out, Target: *target, Size: *size, PerBlock: *perBlock, PerHead: *perHead,
		Options: opt, Log: os.Stderr}
	if !rf.quiet {
		r.Progress = newProgress(os.Stderr, "explain")
	}
	n, err := r.Run()
	if err != nil {
		return err
	}
	if fs.NArg() > 0 && n < fs.NArg() {
		return fmt.Errorf("%d of %d image files could not be explained (reasons above and in %s/skipped)", fs.NArg()-n, fs.NArg(), o.out.Dir())
	}
	fmt.Fprintf(stdout, "explain: %d images -> %s (tables maps, images; PNGs in %s/)\n", n, o.out.Dir(), batch.OverlayDir)
	return experiment.WriteJSON(o.out.Dir(), "params.json", params)
}

// flagSet reports whether the command line set a flag.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// fileArgs is the dataset of the image files named on the command line
// (nil when none: the dataset the flags select), the selection words the
// manifest records, and the fileSet, whose classes are set once the model
// is open.
func fileArgs(fs *flag.FlagSet) (dataset.Dataset, string, *fileSet) {
	fset := &fileSet{paths: fs.Args()}
	if fs.NArg() == 0 {
		return nil, "", fset
	}
	return fset, "files=" + strings.Join(fs.Args(), ","), fset
}

// fileSet is a dataset of image files named on the command line: no labels.
type fileSet struct {
	paths   []string
	classes []string
}

func (f *fileSet) Name() string      { return "files" }
func (f *fileSet) Len() int          { return len(f.paths) }
func (f *fileSet) Classes() []string { return f.classes }

func (f *fileSet) Item(i int) dataset.Item {
	return dataset.Item{Index: i, ID: f.paths[i], Label: -1, Concept: ""}
}

func (f *fileSet) Image(i int) (image.Image, error) {
	if i < 0 || i >= len(f.paths) {
		return nil, fmt.Errorf("files: item %d out of range [0, %d)", i, len(f.paths))
	}
	return preprocess.DecodeFile(f.paths[i])
}

func (f *fileSet) PatchLabels(i, grid int) ([]uint8, bool, error) { return nil, false, nil }
