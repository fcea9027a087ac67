package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/dataset"
	"vitlens/vit/experiment"
	"vitlens/vit/lens"
	"vitlens/vit/results"
)

// version is stamped into manifests; `-ldflags "-X main.version=..."` sets it.
var version = "dev"

// runFlags are the flags of every batch experiment.
type runFlags struct {
	model               modelFlags
	data, root          string
	partition           string
	perClass, limit     int
	classes, shard      string
	out, format         string
	backend             string
	batch, chunk        int
	randomSeed          int64
	masks, force, quiet bool
}

func (f *runFlags) register(fs *flag.FlagSet) {
	f.model.register(fs)
	fs.StringVar(&f.data, "data", "fmnist", "dataset kind: "+strings.Join(dataset.Kinds, ", "))
	fs.StringVar(&f.root, "root", "", "dataset root folder (fmnist defaults to "+dataset.DefaultFMNISTRoot+")")
	fs.StringVar(&f.partition, "partition", "validation", "ImageNet-S partition")
	fs.IntVar(&f.perClass, "per-class", 0, "images per class (0: the dataset's default, 5 for ImageNet-S and CIFAR-100, all otherwise; -1: all)")
	fs.IntVar(&f.limit, "limit", 0, "process only the first N images (0: all)")
	fs.StringVar(&f.classes, "classes-only", "", "comma-separated class indices to keep")
	fs.StringVar(&f.shard, "shard", "", "process shard i of n (\"i/n\"); merge shards with `vitlens merge`")
	fs.StringVar(&f.out, "out", "", "results folder (default results/<experiment>-<model>-<dataset>)")
	fs.StringVar(&f.format, "format", "parquet", "table format: parquet or csv")
	fs.StringVar(&f.backend, "backend", "cpu", "cpu, gpu or auto (gpu when an adapter exists)")
	fs.IntVar(&f.batch, "batch", 16, "images per backend call")
	fs.IntVar(&f.chunk, "chunk", 64, "images per committed chunk (the unit of resuming)")
	fs.Int64Var(&f.randomSeed, "random", -1, "use a random-init model of the same architecture with this seed (the paper's baseline)")
	fs.BoolVar(&f.masks, "masks", true, "read segmentation masks into patch_label when the dataset has them")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress output")
}

// open loads model, dataset, backend and results folder for a lens
// experiment and returns its runner and a function that releases the backend.
func (f *runFlags) open(spec experiment.Spec, args []string, stderr io.Writer) (*experiment.Runner, func(), error) {
	o, err := openRun(f, string(spec.Kind), spec.Params(), args, stderr, nil, "", func(m *vit.Model) (lens.Backend, error) {
		return openBackend(f.backend, m, stderr)
	})
	if err != nil {
		return nil, nil, err
	}
	r := &experiment.Runner{Bundle: o.bundle, Backend: o.backend, Data: o.data, Out: o.out, Spec: spec, Batch: f.batch,
		Shard: o.shard, NumShards: o.numShards, Log: stderr}
	if !f.quiet {
		r.Progress = newProgress(stderr, string(spec.Kind))
	}
	return r, func() { o.backend.Close() }, nil
}

// openedRun is what every batch command starts from: the model, the
// selected dataset, the results folder and, for lens experiments, a backend.
type openedRun struct {
	bundle           *bundle.Bundle
	data             dataset.Dataset
	out              *results.Run
	backend          lens.Backend // nil unless openRun was given newBackend
	shard, numShards int
}

// openRun opens model, dataset, backend (when newBackend is set) and results
// folder for an experiment of the given kind and parameters. A non-nil files
// dataset replaces the one the flags select (explain IMAGE...); filesSel then
// describes it.
func openRun(rf *runFlags, kind string, params map[string]string, args []string, stderr io.Writer,
	files dataset.Dataset, filesSel string, newBackend func(*vit.Model) (lens.Backend, error)) (*openedRun, error) {
	if rf.chunk < 1 || rf.batch < 1 {
		return nil, fmt.Errorf("-chunk and -batch must be at least 1")
	}
	if newBackend == nil {
		if err := cpuOnly(rf.backend, kind, stderr); err != nil {
			return nil, err
		}
	}
	b, err := rf.model.open(stderr)
	if err != nil {
		return nil, err
	}
	modelHash := "demo"
	if rf.model.path != "" {
		if modelHash, err = results.FileSHA256(rf.model.path); err != nil {
			return nil, err
		}
	}
	var seed *uint64
	if rf.randomSeed >= 0 {
		s := uint64(rf.randomSeed)
		seed = &s
		random, err := vit.NewRandom(b.Model.Config, s)
		if err != nil {
			return nil, err
		}
		b = &bundle.Bundle{Model: random, Info: b.Info, Preset: b.Preset, Classes: b.Classes,
			PresetSource: b.PresetSource, ClassesSource: b.ClassesSource}
		modelHash = fmt.Sprintf("random:%d:%s", s, modelHash)
	}
	ds, sel := files, filesSel
	if ds == nil {
		if ds, sel, err = rf.dataset(b); err != nil {
			return nil, err
		}
	}
	if s := b.Model.Config.ImageSize; files == nil && rf.data == "imagenet-s" && rf.masks && b.Preset.Window(s, s, s).Crops() {
		if params == nil {
			params = map[string]string{}
		}
		// Not the original's labels (spec A18): a folder made before masks
		// were cropped must not be resumed with these.
		params["mask_crop"] = "as the image (" + b.Preset.Name + ")"
	}
	o := &openedRun{bundle: b, data: ds, numShards: 1}
	if rf.shard != "" {
		if o.shard, o.numShards, err = dataset.ParseShard(rf.shard); err != nil {
			return nil, err
		}
	}
	format, err := results.ParseFormat(rf.format)
	if err != nil {
		return nil, err
	}
	out := rf.out
	if out == "" {
		name := "demo"
		if rf.model.path != "" {
			name = strings.TrimSuffix(baseName(rf.model.path), ".safetensors")
		}
		if seed != nil {
			name += fmt.Sprintf("-random%d", *seed)
		}
		data := rf.data
		if files != nil {
			data = files.Name()
		}
		out = fmt.Sprintf("results/%s-%s-%s", kind, name, data)
		if rf.shard != "" {
			out += "-shard" + strings.ReplaceAll(rf.shard, "/", "of")
		}
	}
	backendName := "cpu"
	if newBackend != nil {
		if o.backend, err = newBackend(b.Model); err != nil {
			return nil, err
		}
		backendName = o.backend.Name()
	}
	closeOnError := func() {
		if o.backend != nil {
			o.backend.Close()
		}
	}
	man := results.Manifest{Tool: "vitlens", Version: version, Command: append([]string{"vitlens"}, args...),
		Experiment: kind, Params: params, ModelPath: b.Info.Path, ModelSHA256: modelHash,
		Family: string(b.Info.Family), Preset: b.Preset.Name, PresetSource: b.PresetSource, Config: b.Model.Config,
		Dataset: ds.Name(), DatasetRoot: rf.root, Selection: sel,
		Total: experiment.ShardImages(ds.Len(), rf.chunk, o.shard, o.numShards), ChunkSize: rf.chunk,
		Seed: seed, Shard: rf.shard, Backend: backendName}
	if err := os.MkdirAll(out, 0o755); err != nil {
		closeOnError()
		return nil, err
	}
	if o.out, err = results.Create(out, man, format); err != nil {
		closeOnError()
		return nil, err
	}
	fmt.Fprintf(stderr, "%s: %d images of %s with %s on %s -> %s\n", kind, ds.Len(), ds.Name(), b.Info.Path, backendName, out)
	if skipped := dataset.Skipped(ds); len(skipped) > 0 {
		fmt.Fprintf(stderr, "dataset skipped %d entries (first: %s)\n", len(skipped), skipped[0])
	}
	return o, nil
}

// dataset opens and selects the dataset; the selection string identifies it
// in the manifest. Sharding is done by the runner, chunk by chunk. Masks
// follow the model's preprocessing (cropped as the image with deit and
// miil).
func (f *runFlags) dataset(b *bundle.Bundle) (dataset.Dataset, string, error) {
	ds, err := dataset.Open(f.data, f.root, dataset.Options{Partition: f.partition, PerClass: f.perClass,
		Preset: &b.Preset, ImageSize: b.Model.Config.ImageSize})
	if err != nil {
		return nil, "", err
	}
	sel := dataset.Selection{Limit: f.limit}
	if f.classes != "" {
		for _, s := range strings.Split(f.classes, ",") {
			c, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return nil, "", fmt.Errorf("-classes-only: %q is not a class index", s)
			}
			sel.Classes = append(sel.Classes, c)
		}
	}
	if err := sel.Validate(ds); err != nil {
		return nil, "", err
	}
	desc := fmt.Sprintf("partition=%s per-class=%d limit=%d classes=%s", f.partition, f.perClass, f.limit, f.classes)
	return dataset.Select(ds, sel), desc, nil
}

// runExperiment is the body shared by extract, perturb-* and memories.
func runExperiment(name string, args []string, stdout io.Writer, setup func(fs *flag.FlagSet) func() (experiment.Spec, error)) error {
	fs := newFlags(name, "")
	var rf runFlags
	rf.register(fs)
	specOf := setup(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	spec, err := specOf()
	if err != nil {
		return err
	}
	r, closeFn, err := rf.open(spec, append([]string{name}, args...), os.Stderr)
	if err != nil {
		return err
	}
	defer closeFn()
	st, err := r.Run()
	if err != nil {
		return err
	}
	rate := float64(st.Images) / st.Elapsed.Seconds()
	fmt.Fprintf(stdout, "%s: %d images (%.1f img/s), %d skipped, %d chunks resumed -> %s\n",
		name, st.Images, rate, st.Skipped, st.ResumedChunks, r.Out.Dir())
	return nil
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// openBackend picks the backend; auto prefers the GPU and says which it chose.
func openBackend(name string, m *vit.Model, log io.Writer) (lens.Backend, error) {
	switch name {
	case "cpu":
		return lens.NewCPU(m), nil
	case "gpu":
		return openGPU(m)
	case "auto":
		b, err := openGPU(m)
		if err == nil {
			fmt.Fprintf(log, "backend auto: using %s\n", b.Name())
			return b, nil
		}
		fmt.Fprintf(log, "backend auto: no GPU (%v); using the CPU\n", err)
		return lens.NewCPU(m), nil
	}
	return nil, fmt.Errorf("unknown backend %q (want cpu, gpu or auto)", name)
}

// cpuOnly checks --backend for the commands that run the pure-Go forward
// and backward passes themselves (explain, removal, probe): gpu is refused,
// auto says it chose the CPU.
func cpuOnly(name, kind string, log io.Writer) error {
	switch name {
	case "cpu":
		return nil
	case "auto":
		fmt.Fprintf(log, "backend auto: %s runs on the CPU (it has no GPU path)\n", kind)
		return nil
	case "gpu":
		return fmt.Errorf("-backend gpu: %s runs on the CPU only (its gradients and token-removal passes have no GPU kernels); use -backend cpu or auto", kind)
	}
	return fmt.Errorf("-backend: unknown backend %q (want cpu, gpu or auto)", name)
}

// openGPU is replaced by backend_gpu.go when the WebGPU backend is built in.
var openGPU = func(m *vit.Model) (lens.Backend, error) {
	return nil, errors.New("this vitlens was built without the WebGPU backend")
}

// newProgress adapts results.Progress (rate and ETA; a bar on a terminal,
// plain lines otherwise) to the runners' done/total callbacks. The first call
// reports what earlier runs of a resumed folder already did; the display is
// closed when done reaches total.
func newProgress(w io.Writer, label string) func(done, total int) {
	var p *results.Progress
	last := 0
	return func(done, total int) {
		if p == nil {
			p = results.NewProgress(w, label, total, done)
		} else {
			p.Add(done - last)
		}
		last = done
		if done >= total {
			p.Close()
		}
	}
}
