package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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
	model           modelFlags
	data, root      string
	partition       string
	perClass, limit int
	classes, shard  string
	out, format     string
	backend         string
	batch, chunk    int
	shards          int
	randomSeed      int64
	masks, quiet    bool
	lens            string // --lens, registered by the lens experiments
	pipeline        bool   // --pipeline, registered by the lens experiments
	gpuF16          bool   // --gpu-f16, registered by the lens experiments
	timings         bool   // --timings, registered by the lens experiments
}

func (f *runFlags) register(fs *flag.FlagSet) {
	f.model.register(fs)
	fs.StringVar(&f.data, "data", "fmnist", "dataset kind: "+strings.Join(dataset.Kinds, ", "))
	fs.StringVar(&f.root, "root", "", "dataset root folder, or s3://bucket/prefix/ (copied to the local cache first; endpoint and keys from "+results.S3Env+") (fmnist defaults to "+dataset.DefaultFMNISTRoot+")")
	fs.StringVar(&f.partition, "partition", "validation", "ImageNet-S partition")
	fs.IntVar(&f.perClass, "per-class", 0, "images per class (0: the dataset's default, 5 for ImageNet-S and CIFAR-100, all otherwise; -1: all)")
	fs.IntVar(&f.limit, "limit", 0, "process only the first N images (0: all)")
	fs.StringVar(&f.classes, "classes-only", "", "comma-separated class indices to keep")
	fs.StringVar(&f.shard, "shard", "", "process shard i of n (\"i/n\"), or \"auto\": from a SLURM job array or a Kubernetes Indexed Job; merge shards with `vitlens merge`")
	fs.IntVar(&f.shards, "shards", 0, "with --shard auto on a Kubernetes Indexed Job: the number of shards (or set VITLENS_SHARDS)")
	fs.StringVar(&f.out, "out", "", "results folder, or s3://bucket/prefix/ (default results/<experiment>-<model>-<dataset>)")
	fs.StringVar(&f.format, "format", "parquet", "table format: parquet or csv")
	fs.StringVar(&f.backend, "backend", "cpu", "cpu, gpu or auto (gpu when an adapter exists)")
	fs.IntVar(&f.batch, "batch", 16, "images per backend call")
	fs.IntVar(&f.chunk, "chunk", 64, "images per committed chunk (the unit of resuming)")
	fs.Int64Var(&f.randomSeed, "random", -1, "use a random-init model of the same architecture with this seed (the paper's baseline)")
	fs.BoolVar(&f.masks, "masks", true, "read segmentation masks into patch_label when the dataset has them")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress output")
}

// open loads model, dataset and backend for a lens experiment, validates
// the run, then opens its results folder. It returns the runner and a
// function that releases the folder and the backend.
func (f *runFlags) open(spec experiment.Spec, args []string, stderr io.Writer) (_ *experiment.Runner, _ func(), err error) {
	o, err := f.openInputs(nil, "", stderr)
	if err != nil {
		return nil, nil, err
	}
	if f.lens != "" {
		if spec.Lens, err = readLens(f.lens, o.bundle.Model.Config, o.modelHash); err != nil {
			return nil, nil, err
		}
	}
	backend, err := openBackend(f.backend, o.bundle.Model, f.gpuF16, stderr)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			backend.Close()
		}
	}()
	r := &experiment.Runner{Bundle: o.bundle, Backend: backend, Data: o.data, Spec: spec, Batch: f.batch,
		Shard: o.shard, NumShards: o.numShards, Log: stderr}
	if f.timings {
		r.Timings = new(experiment.Timings)
		if cpu, ok := backend.(*lens.CPU); ok {
			cpu.Clock = new(lens.CPUClock)
		}
	}
	if f.pipeline {
		r.DecodeAhead, r.InFlight = 2, 2
	}
	if err := r.Validate(); err != nil {
		return nil, nil, err
	}
	if err := o.create(string(spec.Kind), spec.Params(), spec.Tables(), args, backend.Name(), stderr); err != nil {
		return nil, nil, err
	}
	r.Out = o.out
	if !f.quiet {
		r.Progress = newProgress(stderr, string(spec.Kind))
	}
	return r, func() { o.close(); backend.Close() }, nil
}

// openedRun is what every batch command starts from: the model and the
// selected dataset (openInputs), then, once the command has validated
// everything, the results folder (create).
type openedRun struct {
	flags            *runFlags
	bundle           *bundle.Bundle
	data             dataset.Dataset
	selection        string // the selection flags, as the manifest records them
	files            bool   // data are image files named on the command line
	modelHash        string
	seed             *uint64
	shard, numShards int
	shardFrom        string // where --shard auto found the shard, "" otherwise
	format           results.Format
	out              *results.Run // set by create
}

// openInputs opens the model and the dataset the flags select and checks
// every flag; it writes nothing. A non-nil files dataset replaces the one
// the flags select (explain IMAGE...); filesSel then describes it.
func (rf *runFlags) openInputs(files dataset.Dataset, filesSel string, stderr io.Writer) (*openedRun, error) {
	if rf.chunk < 1 || rf.batch < 1 {
		return nil, fmt.Errorf("--chunk and --batch must be at least 1")
	}
	format, err := results.ParseFormat(rf.format)
	if err != nil {
		return nil, fmt.Errorf("--format: %w", err)
	}
	o := &openedRun{flags: rf, numShards: 1, format: format, files: files != nil}
	if rf.shards != 0 && rf.shard != "auto" {
		return nil, fmt.Errorf("--shards goes with --shard auto")
	}
	if rf.shard == "auto" {
		// Resolved once, here: the folder name, the manifest and the
		// selection all see the scheduler's "i/n".
		if rf.shard, o.shardFrom, err = shardFromScheduler(os.Getenv, rf.shards); err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "shard %s (from %s)\n", rf.shard, o.shardFrom)
	}
	if rf.shard != "" {
		if o.shard, o.numShards, err = dataset.ParseShard(rf.shard); err != nil {
			return nil, fmt.Errorf("--shard: %w", err)
		}
	}
	if o.bundle, o.modelHash, o.seed, err = rf.model.openHashed(rf.randomSeed, stderr); err != nil {
		return nil, err
	}
	o.data, o.selection = files, filesSel
	if files == nil {
		if o.data, o.selection, err = rf.dataset(o.bundle, stderr); err != nil {
			return nil, err
		}
	}
	if n, c := len(o.data.Classes()), o.bundle.Model.Config.Classes; n > c {
		return nil, fmt.Errorf("dataset %s has %d classes, the model only %d: choose a dataset of the model's classes (--data, --root) or a model with %d outputs (--model)",
			o.data.Name(), n, c, n)
	}
	return o, nil
}

// openCPUInputs is openInputs for the commands that run on the CPU only
// (explain, removal, probe), after checking --backend (see cpuOnly).
func (rf *runFlags) openCPUInputs(kind string, files dataset.Dataset, filesSel string, stderr io.Writer) (*openedRun, error) {
	if err := cpuOnly(rf.backend, kind, stderr); err != nil {
		return nil, err
	}
	return rf.openInputs(files, filesSel, stderr)
}

// openHashed opens the model and identifies it: the SHA-256 of its file
// ("demo" for the bundled one). A seed >= 0 (--random) swaps the weights for
// a random init of the same architecture, which the hash then names.
func (f *modelFlags) openHashed(randomSeed int64, stderr io.Writer) (*bundle.Bundle, string, *uint64, error) {
	// The file is hashed on another thread while it is decoded: with a
	// second core the hash of a large checkpoint costs no time.
	type hashed struct {
		sum string
		err error
	}
	sum := make(chan hashed, 1)
	if f.path != "" {
		go func() {
			h, err := results.FileSHA256(f.path)
			sum <- hashed{h, err}
		}()
	}
	b, err := f.open(stderr)
	if err != nil {
		return nil, "", nil, err
	}
	hash := "demo"
	if f.path != "" {
		h := <-sum
		if h.err != nil {
			return nil, "", nil, h.err
		}
		hash = h.sum
	}
	if randomSeed < 0 {
		return b, hash, nil, nil
	}
	s := uint64(randomSeed)
	random, err := vit.NewRandom(b.Model.Config, s)
	if err != nil {
		return nil, "", nil, err
	}
	b = &bundle.Bundle{Model: random, Info: b.Info, Preset: b.Preset, Classes: b.Classes,
		PresetSource: b.PresetSource, ClassesSource: b.ClassesSource}
	return b, fmt.Sprintf("random:%d:%s", s, hash), &s, nil
}

// manifest describes the run for its results folder. Its identity fields
// cover everything that changes a row: the model's hash, preset, class
// names and architecture; the dataset's resolved root and a fingerprint of
// its selected image list; the selection, chunking, seed, format and shard
// flags; and params, the experiment's own flags.
func (o *openedRun) manifest(kind string, params map[string]string, args []string, backend string) (results.Manifest, error) {
	rf, b := o.flags, o.bundle
	root := ""
	if !o.files {
		var err error
		if root, err = resolveRoot(rf.data, rf.root); err != nil {
			return results.Manifest{}, err
		}
	}
	if s := b.Model.Config.ImageSize; !o.files && rf.data == "imagenet-s" && rf.masks && b.Preset.Window(s, s, s).Crops() {
		params = maps.Clone(params)
		if params == nil {
			params = map[string]string{}
		}
		// Not the original's labels (spec A18): a folder made before masks
		// were cropped must not be resumed with these.
		params["mask_crop"] = "as the image (" + b.Preset.Name + ")"
	}
	headHash := ""
	if rf.model.head != "" {
		var err error
		if headHash, err = results.FileSHA256(rf.model.head); err != nil {
			return results.Manifest{}, fmt.Errorf("--head: %w", err)
		}
	}
	lensHash := ""
	if rf.lens != "" {
		var err error
		if lensHash, err = results.FileSHA256(rf.lens); err != nil {
			return results.Manifest{}, fmt.Errorf("--lens: %w", err)
		}
	}
	classes := sha256.Sum256([]byte(strings.Join(b.Classes, "\n")))
	return results.Manifest{Tool: "vitlens", Version: version, Command: append([]string{"vitlens"}, args...),
		Experiment: kind, Params: params, ModelPath: b.Info.Path, ModelSHA256: o.modelHash, HeadSHA256: headHash, LensSHA256: lensHash,
		Family: string(b.Info.Family), Preset: b.Preset.Name, PresetSource: b.PresetSource, Config: b.Model.Config,
		ClassesSHA256: hex.EncodeToString(classes[:]), Dataset: o.data.Name(), DatasetRoot: root, ImagesSHA256: dataset.Fingerprint(o.data), Selection: o.selection,
		Total: experiment.ShardImages(o.data.Len(), rf.chunk, o.shard, o.numShards), ChunkSize: rf.chunk,
		Seed: o.seed, Shard: rf.shard, ShardFrom: o.shardFrom, Backend: backend, Created: time.Now().UTC()}, nil
}

// resolveRoot is the absolute, cleaned --root (fmnist's default when none).
func resolveRoot(kind, root string) (string, error) {
	if root == "" && kind == "fmnist" {
		root = dataset.DefaultFMNISTRoot
	}
	if root == "" || results.IsBucket(root) {
		return root, nil
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("--root %s: %w", root, err)
	}
	return abs, nil
}

// outDir is --out, or results/<experiment>-<model>-<data>[-shard<i>of<n>].
func (o *openedRun) outDir(kind string) string {
	rf := o.flags
	if rf.out != "" {
		return rf.out
	}
	name := "demo"
	if rf.model.path != "" {
		name = strings.TrimSuffix(baseName(rf.model.path), ".safetensors")
	}
	if o.seed != nil {
		name += fmt.Sprintf("-random%d", *o.seed)
	}
	data := rf.data
	if o.files {
		data = o.data.Name()
	}
	out := fmt.Sprintf("results/%s-%s-%s", kind, name, data)
	if rf.shard != "" {
		out += "-shard" + strings.ReplaceAll(rf.shard, "/", "of")
	}
	return out
}

// create opens (locks, and resumes or starts) the results folder of a run
// the command has validated, and says what runs where. Call close when done.
func (o *openedRun) create(kind string, params map[string]string, tables []results.Table, args []string, backend string, stderr io.Writer) error {
	man, err := o.manifest(kind, params, args, backend)
	if err != nil {
		return err
	}
	man.Schema = tables
	out := o.outDir(kind)
	if o.out, err = results.Create(out, man, o.format); err != nil {
		return err
	}
	for _, r := range o.out.Repaired() {
		fmt.Fprintf(stderr, "%s: redoing %s\n", out, r)
	}
	fmt.Fprintf(stderr, "%s: %d images of %s with %s on %s -> %s\n", kind, o.data.Len(), o.data.Name(), o.bundle.Info.Path, backend, out)
	if skipped := dataset.Skipped(o.data); len(skipped) > 0 {
		fmt.Fprintf(stderr, "dataset skipped %d entries (first: %s; all in the skipped table)\n", len(skipped), skipped[0])
	}
	return nil
}

// close releases the results folder.
func (o *openedRun) close() {
	if o.out != nil {
		o.out.Close()
	}
}

// dataset opens and selects the dataset; the selection string identifies it
// in the manifest. Sharding is done by the runner, chunk by chunk. Masks
// follow the model's preprocessing (cropped as the image with deit and
// miil).
func (f *runFlags) dataset(b *bundle.Bundle, stderr io.Writer) (dataset.Dataset, string, error) {
	root, err := localRoot(f.root, stderr)
	if err != nil {
		return nil, "", err
	}
	ds, err := dataset.Open(f.data, root, dataset.Options{Partition: f.partition, PerClass: f.perClass,
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
	desc := fmt.Sprintf("partition=%s per-class=%d limit=%d classes-only=%s", f.partition, f.perClass, f.limit, f.classes)
	return dataset.Select(ds, sel), desc, nil
}

// localRoot is --root on this machine: an s3:// root is copied into
// VITLENS_CACHE (default: the user's cache folder)/s3/<bucket>/<prefix>
// first, objects already there at their size kept. The manifest records the
// s3:// URL, so the copy's place does not change the run's identity.
func localRoot(root string, stderr io.Writer) (string, error) {
	if !results.IsBucket(root) {
		return root, nil
	}
	bucket, prefix, err := results.ParseBucketURL(root)
	if err != nil {
		return "", fmt.Errorf("--root: %w", err)
	}
	cache := os.Getenv("VITLENS_CACHE")
	if cache == "" {
		if cache, err = os.UserCacheDir(); err != nil {
			return "", fmt.Errorf("--root %s: no cache folder for its copy (set VITLENS_CACHE): %w", root, err)
		}
		cache = filepath.Join(cache, "vitlens")
	}
	local := filepath.Join(cache, "s3", bucket, filepath.FromSlash(prefix))
	n, err := results.FetchPrefix(root, local)
	if err != nil {
		return "", fmt.Errorf("--root: %w", err)
	}
	fmt.Fprintf(stderr, "--root %s: %d files downloaded to %s\n", root, n, local)
	return local, nil
}

// runExperiment is the body shared by extract, perturb-* and memories.
func runExperiment(name string, args []string, stdout io.Writer, setup func(fs *flag.FlagSet) func() (experiment.Spec, error)) error {
	fs := newFlags(name, "")
	var rf runFlags
	rf.register(fs)
	fs.StringVar(&rf.lens, "lens", "", "read hs and hs_mid through a tuned lens: the translators.safetensors of vitlens tune-lens (attn and mlp keep the plain lens)")
	fs.BoolVar(&rf.gpuF16, "gpu-f16", false, gpuF16Usage)
	fs.BoolVar(&rf.timings, "timings", false, "print where the time went to stderr: opening the model, decoding, forward, lens, rows, writing (wall and CPU seconds)")
	fs.BoolVar(&rf.pipeline, "pipeline", true, "decode the next chunks on other threads and keep two backend calls in flight (the GPU computes one while the next is staged); rows are the same either way")
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
	spec.Masks = spec.Masks && rf.masks
	clock := newStageClock()
	r, closeFn, err := rf.open(spec, append([]string{name}, args...), os.Stderr)
	if err != nil {
		return err
	}
	defer closeFn()
	clock.lap("opening (model, dataset, results folder)")
	st, err := r.Run()
	if err != nil {
		return err
	}
	if rf.timings {
		clock.lap("running the chunks")
		printTimings(os.Stderr, clock, r, st)
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

// gpuF16Usage documents --gpu-f16 on extract and friends.
const gpuF16Usage = "with --backend gpu or auto: store the GPU's matmul weights as f16 (half their memory, f32 arithmetic; ranks move slightly: vitlens bench --backend gpu --gpu-f16 measures how much)"

// openBackend picks the backend; auto prefers the GPU and says which it
// chose. f16 (--gpu-f16) stores the GPU's weights as f16; the CPU refuses it.
func openBackend(name string, m *vit.Model, f16 bool, log io.Writer) (lens.Backend, error) {
	switch name {
	case "cpu":
		if f16 {
			return nil, errors.New("--gpu-f16 stores the GPU's weights as f16; the CPU backend has no f16 weights: drop --gpu-f16 or use --backend gpu")
		}
		return lens.NewCPU(m), nil
	case "gpu":
		return openGPU(m, f16)
	case "auto":
		b, err := openGPU(m, f16)
		if err == nil {
			fmt.Fprintf(log, "backend auto: using %s\n", b.Name())
			return b, nil
		}
		fmt.Fprintf(log, "backend auto: no GPU (%v); using the CPU", err)
		if f16 {
			fmt.Fprint(log, " with f32 weights (--gpu-f16 applies to the GPU only)")
		}
		fmt.Fprintln(log)
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
var openGPU = func(m *vit.Model, f16 bool) (lens.Backend, error) {
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

// readLens reads a translator file (--lens, --init) for a model of config
// c whose file hashes to modelHash, refusing translators fitted on another
// model.
func readLens(path string, c vit.Config, modelHash string) (*lens.Translators, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := lens.ReadTranslators(path, data, c)
	if err != nil {
		return nil, err
	}
	if h := t.Meta["model_sha256"]; h != "" && h != modelHash {
		return nil, fmt.Errorf("%s: translators fitted on the model of sha256 %s, but --model is %s: fit them for this model with vitlens tune-lens", path, h, modelHash)
	}
	return t, nil
}
