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

// open loads model, dataset, backend and results folder for an experiment.
func (f *runFlags) open(spec experiment.Spec, args []string, stderr io.Writer) (*experiment.Runner, func(), error) {
	b, err := f.model.open()
	if err != nil {
		return nil, nil, err
	}
	modelHash := "demo"
	if f.model.path != "" {
		if modelHash, err = results.FileSHA256(f.model.path); err != nil {
			return nil, nil, err
		}
	}
	var seed *uint64
	if f.randomSeed >= 0 {
		s := uint64(f.randomSeed)
		seed = &s
		random, err := vit.NewRandom(b.Model.Config, s)
		if err != nil {
			return nil, nil, err
		}
		b = &bundle.Bundle{Model: random, Info: b.Info, Preset: b.Preset, Classes: b.Classes,
			PresetSource: b.PresetSource, ClassesSource: b.ClassesSource}
		modelHash = fmt.Sprintf("random:%d:%s", s, modelHash)
	}
	ds, sel, err := f.dataset()
	if err != nil {
		return nil, nil, err
	}
	shard, nShards := 0, 1
	if f.shard != "" {
		if shard, nShards, err = dataset.ParseShard(f.shard); err != nil {
			return nil, nil, err
		}
	}
	format, err := results.ParseFormat(f.format)
	if err != nil {
		return nil, nil, err
	}
	backend, err := openBackend(f.backend, b.Model, stderr)
	if err != nil {
		return nil, nil, err
	}
	out := f.out
	if out == "" {
		name := "demo"
		if f.model.path != "" {
			name = strings.TrimSuffix(baseName(f.model.path), ".safetensors")
		}
		if seed != nil {
			name += fmt.Sprintf("-random%d", *seed)
		}
		out = fmt.Sprintf("results/%s-%s-%s", spec.Kind, name, f.data)
		if f.shard != "" {
			out += "-shard" + strings.ReplaceAll(f.shard, "/", "of")
		}
	}
	man := results.Manifest{Tool: "vitlens", Version: version, Command: append([]string{"vitlens"}, args...),
		Experiment: string(spec.Kind), Params: spec.Params(), ModelPath: b.Info.Path, ModelSHA256: modelHash,
		Family: string(b.Info.Family), Preset: b.Preset.Name, Config: b.Model.Config,
		Dataset: ds.Name(), DatasetRoot: f.root, Selection: sel, Total: experiment.ShardImages(ds.Len(), f.chunk, shard, nShards), ChunkSize: f.chunk,
		Seed: seed, Shard: f.shard, Backend: backend.Name()}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, nil, err
	}
	run, err := results.Create(out, man, format)
	if err != nil {
		backend.Close()
		return nil, nil, err
	}
	r := &experiment.Runner{Bundle: b, Backend: backend, Data: ds, Out: run, Spec: spec, Batch: f.batch,
		Shard: shard, NumShards: nShards, Log: stderr}
	if !f.quiet {
		r.Progress = newProgress(stderr, string(spec.Kind))
	}
	fmt.Fprintf(stderr, "%s: %d images of %s with %s on %s -> %s\n", spec.Kind, ds.Len(), ds.Name(), b.Info.Path, backend.Name(), out)
	if skipped := dataset.Skipped(ds); len(skipped) > 0 {
		fmt.Fprintf(stderr, "dataset skipped %d entries (first: %s)\n", len(skipped), skipped[0])
	}
	return r, func() { backend.Close() }, nil
}

// dataset opens and selects the dataset; the selection string identifies it
// in the manifest. Sharding is done by the runner, chunk by chunk.
func (f *runFlags) dataset() (dataset.Dataset, string, error) {
	ds, err := dataset.Open(f.data, f.root, dataset.Options{Partition: f.partition, PerClass: f.perClass})
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
