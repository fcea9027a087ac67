package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"vitlens/vit"
	"vitlens/vit/dataset"
	"vitlens/vit/experiment"
	"vitlens/vit/preprocess"
	"vitlens/vit/results"
	"vitlens/vit/tunedlens"
)

func init() {
	register("tune-lens", "fit a tuned lens (per-block translators of hs and hs_mid) and compare it with the plain lens on held-out images: --fit ridge|kl --out DIR", runTuneLens)
}

// splitImages is a dataset's images i with train(i) == want, preprocessed
// for the model.
type splitImages struct {
	ds     dataset.Dataset
	preset preprocess.Preset
	size   int
	idx    []int
}

func (s splitImages) Len() int        { return len(s.idx) }
func (s splitImages) Label(i int) int { return s.ds.Item(s.idx[i]).Label }
func (s splitImages) Image(i int) (*vit.Tensor, error) {
	return dataset.Input(s.ds, s.idx[i], s.preset, s.size)
}

// inTrainSplit spreads a training fraction f evenly over the image order:
// image i trains when ⌊(i+1)·f⌋ > ⌊i·f⌋ (f = 0.5: every other image), so
// a class-sorted dataset is split within every class.
func inTrainSplit(i int, f float64) bool {
	return int(float64(i+1)*f) > int(float64(i)*f)
}

func runTuneLens(args []string, stdout io.Writer) error {
	fs := newFlags("tune-lens", "")
	var rf runFlags
	rf.register(fs)
	fit := fs.String("fit", "ridge", "ridge (closed form, fast) or kl (AdamW on KL(final ‖ translated), the tuned-lens objective)")
	ridge := fs.Float64("ridge", 1e-3, "--fit ridge: penalty per token on W (sklearn's alpha = this × training tokens)")
	epochs := fs.Int("epochs", 3, "--fit kl: passes over the training images")
	lr := fs.Float64("lr", 1e-3, "--fit kl: AdamW learning rate")
	decay := fs.Float64("weight-decay", 1e-3, "--fit kl: decoupled weight decay on W")
	seed := fs.Uint64("seed", 0, "--fit kl: seed of the order of the training images")
	initFile := fs.String("init", "", "--fit kl: start from these translators (e.g. a --fit ridge result) instead of the plain lens")
	trainFrac := fs.Float64("train-frac", 0.5, "share of the selected images fitted on; the rest are held out for the comparison")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if rf.out == "" {
		return fmt.Errorf("--out DIR is required (tune-lens writes DIR/translators.safetensors and DIR/tuned_lens.json)")
	}
	if !(*trainFrac > 0 && *trainFrac < 1) {
		return fmt.Errorf("--train-frac must be between 0 and 1 (exclusive), got %v", *trainFrac)
	}
	opt := tunedlens.Options{Fit: *fit, Ridge: *ridge, Epochs: *epochs, Batch: rf.batch, LR: *lr, WeightDecay: *decay, Seed: *seed}
	if err := opt.Validate(); err != nil {
		return err
	}
	o, err := rf.openCPUInputs("tune-lens", nil, "", os.Stderr)
	if err != nil {
		return err
	}
	if o.numShards > 1 {
		return fmt.Errorf("tune-lens cannot be sharded (--shard): the fit needs every training image")
	}
	m := o.bundle.Model
	if *initFile != "" {
		if opt.Init, err = readLens(*initFile, m.Config, o.modelHash); err != nil {
			return err
		}
	}
	train := splitImages{ds: o.data, preset: o.bundle.Preset, size: m.Config.ImageSize}
	held := train
	train.idx, held.idx = nil, nil
	for i := range o.data.Len() {
		if inTrainSplit(i, *trainFrac) {
			train.idx = append(train.idx, i)
		} else {
			held.idx = append(held.idx, i)
		}
	}
	if train.Len() == 0 || held.Len() == 0 {
		return fmt.Errorf("%d images split into %d training and %d held-out: select more images (--limit, --per-class) or change --train-frac", o.data.Len(), train.Len(), held.Len())
	}
	if !rf.quiet {
		opt.Progress = newProgress(os.Stderr, "tune-lens "+*fit)
	}
	opt.EpochLoss = func(epoch int, loss float64) {
		fmt.Fprintf(os.Stderr, "tune-lens: epoch %d: mean training KL %.4f nats (summed over sites and blocks)\n", epoch+1, loss)
	}
	fmt.Fprintf(os.Stderr, "tune-lens: fitting on %d images of %s, %d held out\n", train.Len(), o.data.Name(), held.Len())
	t, err := tunedlens.Fit(m, train, opt)
	if err != nil {
		return err
	}
	t.Meta = map[string]string{"model_sha256": o.modelHash, "model": o.bundle.Info.Path,
		"dataset": fmt.Sprintf("%s (%s; list sha256 %s)", o.data.Name(), o.selection, dataset.Fingerprint(o.data)),
		"split":   fmt.Sprintf("train: image i of the %d selected when floor((i+1)*%v) > floor(i*%v) (%d images); held out: the other %d", o.data.Len(), *trainFrac, *trainFrac, train.Len(), held.Len()),
		"fit":     *fit, "seed": strconv.FormatUint(*seed, 10)}
	switch *fit {
	case tunedlens.FitRidge:
		t.Meta["ridge"] = strconv.FormatFloat(*ridge, 'g', -1, 64)
	case tunedlens.FitKL:
		t.Meta["kl"] = fmt.Sprintf("epochs=%d batch=%d lr=%v weight_decay=%v init=%s", *epochs, rf.batch, *lr, *decay, *initFile)
	}
	data, err := t.Encode()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(rf.out, 0o755); err != nil {
		return err
	}
	path := filepath.Join(rf.out, "translators.safetensors")
	if err := results.WriteFile(path, data); err != nil {
		return err
	}
	var progress func(int, int)
	if !rf.quiet {
		progress = newProgress(os.Stderr, "tune-lens held-out")
	}
	hs, mid, err := tunedlens.Evaluate(m, t, held, progress)
	if err != nil {
		return err
	}
	rep := tunedlens.Report{Fit: *fit, Train: train.Len(), HeldOut: held.Len(), Meta: t.Meta, Blocks: hs, BlocksMid: mid}
	if err := experiment.WriteJSON(rf.out, "tuned_lens.json", rep); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tune-lens: %s fit on %d images, held-out %d -> %s\n", *fit, train.Len(), held.Len(), path)
	rep.WriteText(stdout)
	return nil
}
