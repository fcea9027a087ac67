package main

import (
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"vitlens/vit"
	"vitlens/vit/activations/cacherun"
	"vitlens/vit/bundle"
	"vitlens/vit/patching"
)

func init() {
	register("patch", "activation patching: the corrupted image with clean (or zero, mean, resampled) activations patched in at each hook, token or head", runPatch)
}

func runPatch(args []string, stdout io.Writer) error {
	fs := newFlags("patch", "")
	var rf runFlags
	rf.register(fs)
	cleanPath := fs.String("clean", "", "the clean image (its activations are patched in)")
	corruptPath := fs.String("corrupt", "", "the corrupted image (run once per patch)")
	pairs := fs.String("pairs", "", "instead of --clean/--corrupt: a CSV of pairs (header clean,corrupt and optionally metric; paths relative to the CSV's folder), run as a resumable batch into a results folder (tables patches, pairs, skipped)")
	hookPat := fs.String("hooks", "blocks.*.hook_resid_pre", "hooks to patch: names or patterns with *, comma-separated (vitlens hooks lists them)")
	per := fs.String("per", string(patching.PerToken), "what one patch covers: layer (the whole activation), token (one position, every head), head (one head, every position) or position (one head at one position)")
	mode := fs.String("mode", string(patching.ModePatch), "what is patched in: patch (the clean image's activation), zero, mean (the mean over --reference images or a --mean-from cache run) or resample (a random --reference image's)")
	refs := fs.String("reference", "", "comma-separated image files for --mode mean and resample")
	meanFrom := fs.String("mean-from", "", "for --mode mean: a finished cache run (vitlens cache --tokens all with these hooks) whose dataset means are patched in")
	seed := fs.Uint64("seed", 1, "random seed of --mode resample")
	metricFlag := fs.String("metric", "", "what is measured: logit_diff:A,B, logit:A or rank:A (class indices; default logit_diff of the clean and the corrupted image's predictions)")
	attribution := fs.Bool("attribution", false, "also estimate every patch from one backward pass (attribution patching) and report its agreement with exact patching")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	single := *cleanPath != "" && *corruptPath != ""
	if single == (*pairs != "") || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if !slices.Contains(patching.Pers, patching.Per(*per)) {
		return fmt.Errorf("-per must be layer, token, head or position, got %q", *per)
	}
	if !slices.Contains(patching.Modes, patching.Mode(*mode)) {
		return fmt.Errorf("-mode must be patch, zero, mean or resample, got %q", *mode)
	}
	if *attribution && patching.Mode(*mode) != patching.ModePatch {
		return errors.New("--attribution estimates --mode patch (clean minus corrupted activations)")
	}
	if !single {
		params := map[string]string{"hooks": *hookPat, "per": *per, "mode": *mode, "metric": *metricFlag,
			"attribution": strconv.FormatBool(*attribution), "reference": *refs, "mean_from": *meanFrom, "seed": strconv.FormatUint(*seed, 10)}
		return runPatchPairs(&rf, *pairs, params, args, stdout, func(b *bundle.Bundle) (*patchJob, error) {
			return newPatchJob(b, &rf, *hookPat, patching.Per(*per), patching.Mode(*mode), *metricFlag, *attribution, *refs, *meanFrom, *seed)
		})
	}
	if err := refuseBatchFlags(fs); err != nil {
		return err
	}
	if err := checkBackendName(rf.backend); err != nil {
		return err
	}
	b, err := rf.model.open(os.Stderr)
	if err != nil {
		return err
	}
	job, err := newPatchJob(b, &rf, *hookPat, patching.Per(*per), patching.Mode(*mode), *metricFlag, *attribution, *refs, *meanFrom, *seed)
	if err != nil {
		return err
	}
	defer job.close()
	clean, err := loadImage(b, *cleanPath)
	if err != nil {
		return fmt.Errorf("-clean: %w", err)
	}
	corrupt, err := loadImage(b, *corruptPath)
	if err != nil {
		return fmt.Errorf("-corrupt: %w", err)
	}
	pr, err := job.run(clean, corrupt, "")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "metric %s: clean %.4f, corrupted %.4f; %d patches (%s, --per %s) on %s\n", pr.metric, pr.clean, pr.base, len(pr.res), job.mode, *per, job.backend)
	printTopPatches(stdout, pr.res, pr.base, 10)
	if pr.est != nil {
		fmt.Fprintf(stdout, "attribution patching vs exact: Pearson r %.4f, largest |estimate − effect| %.4g over %d patches\n", pr.pearson, pr.maxDiff, len(pr.res))
	}
	out := rf.out
	if out == "" {
		out = "patch-out"
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := writePatchCSV(filepath.Join(out, "patch.csv"), pr.res, pr.est, pr.base); err != nil {
		return err
	}
	files, err := writePatchMaps(out, b.Model.Config, pr.res, patching.Per(*per))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "patch: -> %s (patch.csv; heat-maps %s: red restores the clean metric, blue moves away from it)\n", out, strings.Join(files, ", "))
	return nil
}

// batchOnlyFlags are the run flags that only a --pairs batch reads (its
// dataset selection, sharding, tables and the random-init baseline).
var batchOnlyFlags = []string{"data", "root", "partition", "per-class", "limit", "classes-only", "shard", "shards",
	"format", "batch", "chunk", "random", "masks", "quiet"}

// refuseBatchFlags refuses, in the single-pair form of patch, a batch flag
// that would otherwise be silently ignored.
func refuseBatchFlags(fs *flag.FlagSet) error {
	var set []string
	fs.Visit(func(f *flag.Flag) {
		if slices.Contains(batchOnlyFlags, f.Name) {
			set = append(set, "--"+f.Name)
		}
	})
	if len(set) == 0 {
		return nil
	}
	return fmt.Errorf("%s: only a --pairs batch reads these; --clean/--corrupt patches one pair (drop them, or give the pair in a --pairs CSV)", strings.Join(set, ", "))
}

// patchJob is what every pair of a patch run shares.
type patchJob struct {
	b           *bundle.Bundle
	hooks       []vit.Hook
	sites       []patching.Site
	mode        patching.Mode
	metric      string // --metric, "" for each pair's predictions
	attribution bool
	shared      patching.Source // mean or resample activations, the same for every pair
	// patcher runs the patched forwards (--backend), backend names it for
	// the results' manifest; close releases it.
	patcher patching.Patcher
	backend string
	close   func()
}

func newPatchJob(b *bundle.Bundle, rf *runFlags, hookPat string, per patching.Per, mode patching.Mode, metric string, attribution bool, refs, meanFrom string, seed uint64) (*patchJob, error) {
	c := b.Model.Config
	hooks, err := c.MatchHooks(hookPat)
	if err != nil {
		return nil, fmt.Errorf("-hooks: %w", err)
	}
	sites, err := patching.Sites(c, hooks, per, c.NumTokens())
	if err != nil {
		return nil, err
	}
	if metric != "" {
		if _, err := patching.ParseMetric(metric, c.Classes); err != nil {
			return nil, err
		}
	}
	j := &patchJob{b: b, hooks: hooks, sites: sites, mode: mode, metric: metric, attribution: attribution}
	if j.shared, err = patchSource(b, patching.Run{Model: b.Model, Mode: mode}, hooks, refs, meanFrom, seed); err != nil {
		return nil, err
	}
	if j.patcher, j.backend, j.close, err = openPatcher(rf.backend, b.Model, sites, os.Stderr); err != nil {
		return nil, err
	}
	return j, nil
}

// gpuPatcher is what the GPU backend adds to a lens backend for patching.
type gpuPatcher interface {
	patching.Patcher
	CheckPatchable(sites []patching.Site) error
}

// checkBackendName refuses an unknown --backend before the model loads.
func checkBackendName(name string) error {
	if !slices.Contains([]string{"cpu", "gpu", "auto"}, name) {
		return fmt.Errorf("-backend: unknown backend %q (want cpu, gpu or auto)", name)
	}
	return nil
}

// openPatcher picks what runs the patched forwards: the pure-Go forward
// (cpu), the GPU backend's batches (gpu: every hook of sites must be one it
// patches, else an error naming it), or auto: the GPU when there is one and
// it patches every hook, else the CPU, saying why. The clean and corrupted
// images' own forwards (the replacements, the metrics' baselines and
// --attribution) run on the CPU in every case.
func openPatcher(name string, m *vit.Model, sites []patching.Site, log io.Writer) (patching.Patcher, string, func(), error) {
	cpu := func() (patching.Patcher, string, func(), error) {
		return patching.CPU{Model: m}, "cpu", func() {}, nil
	}
	if err := checkBackendName(name); err != nil {
		return nil, "", nil, err
	}
	if name == "cpu" {
		return cpu()
	}
	lb, err := openGPU(m, false)
	if err != nil {
		if name == "gpu" {
			return nil, "", nil, err
		}
		fmt.Fprintf(log, "backend auto: no GPU (%v); patching on the CPU\n", err)
		return cpu()
	}
	gp, ok := lb.(gpuPatcher)
	if !ok {
		lb.Close()
		return nil, "", nil, fmt.Errorf("-backend %s: %s does not patch", name, lb.Name())
	}
	if err := gp.CheckPatchable(sites); err != nil {
		lb.Close()
		if name == "gpu" {
			return nil, "", nil, fmt.Errorf("-backend gpu: %w; use --backend cpu or auto", err)
		}
		fmt.Fprintf(log, "backend auto: %v; patching on the CPU instead\n", err)
		return cpu()
	}
	if name == "auto" {
		fmt.Fprintf(log, "backend auto: patching on %s\n", lb.Name())
	}
	return gp, lb.Name(), func() { lb.Close() }, nil
}

// pairResult is one pair's patching.
type pairResult struct {
	metric           patching.Metric
	clean, base      float64
	res              []patching.Result
	est              []float64 // nil without --attribution
	pearson, maxDiff float64
}

// run patches one pair; metric overrides the job's (a pairs file's column).
func (j *patchJob) run(clean, corrupt *vit.Tensor, metric string) (*pairResult, error) {
	c := j.b.Model.Config
	r := patching.Run{Model: j.b.Model, Mode: j.mode, Patcher: j.patcher}
	cleanActs, cleanLogits, err := r.Cache(clean, j.hooks)
	if err != nil {
		return nil, err
	}
	corruptActs, corruptLogits, err := r.Cache(corrupt, j.hooks)
	if err != nil {
		return nil, err
	}
	if metric == "" {
		metric = j.metric
	}
	if metric == "" {
		a, z := argmax(cleanLogits), argmax(corruptLogits)
		if a == z {
			return nil, fmt.Errorf("both images are predicted %d (%s): give --metric, e.g. logit:%d or logit_diff:%d,B", a, j.b.Classes[a], a, a)
		}
		metric = fmt.Sprintf("logit_diff:%d,%d", a, z)
	}
	if r.Metric, err = patching.ParseMetric(metric, c.Classes); err != nil {
		return nil, err
	}
	src := j.shared
	if j.mode == patching.ModePatch {
		src = cleanActs
	}
	pr := &pairResult{metric: r.Metric, clean: r.Metric.Value(cleanLogits), base: r.Metric.Value(corruptLogits)}
	if pr.res, err = r.Patch(corrupt, j.sites, src, pr.clean, pr.base); err != nil {
		return nil, err
	}
	if j.attribution {
		if pr.est, err = r.Attribution(corrupt, j.sites, cleanActs, corruptActs); err != nil {
			return nil, err
		}
		pr.pearson, pr.maxDiff = patching.Agreement(pr.est, pr.res, pr.base)
	}
	return pr, nil
}

// patchSource gives the activations every pair's patches write in modes
// mean and resample: the mean or a random one of the reference images', or
// a cache run's means (patch takes each pair's clean image's; zero none).
func patchSource(b *bundle.Bundle, r patching.Run, hooks []vit.Hook, refs, meanFrom string, seed uint64) (patching.Source, error) {
	switch {
	case meanFrom != "" && r.Mode != patching.ModeMean:
		return nil, fmt.Errorf("--mean-from goes with --mode mean")
	case r.Mode == patching.ModePatch, r.Mode == patching.ModeZero:
		return nil, nil
	case meanFrom != "":
		means, _, err := cacherun.Mean(meanFrom, b.Model.Config, hooks)
		if err != nil {
			return nil, fmt.Errorf("--mean-from: %w", err)
		}
		return means, nil
	}
	var paths []string
	for _, p := range strings.Split(refs, ",") {
		if p = strings.TrimSpace(p); p != "" {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("--mode %s needs --reference IMAGE[,IMAGE...]%s", r.Mode, map[bool]string{true: " or --mean-from CACHE_RUN"}[r.Mode == patching.ModeMean])
	}
	if r.Mode == patching.ModeResample {
		paths = []string{paths[rand.New(rand.NewPCG(seed, 0)).IntN(len(paths))]}
	}
	var sum patching.Source
	for _, p := range paths {
		x, err := loadImage(b, p)
		if err != nil {
			return nil, fmt.Errorf("-reference: %w", err)
		}
		acts, _, err := r.Cache(x, hooks)
		if err != nil {
			return nil, err
		}
		if sum == nil {
			sum = acts
			continue
		}
		for h, t := range acts {
			vit.Add(sum[h].Data, t.Data)
		}
	}
	for _, t := range sum {
		for i := range t.Data {
			t.Data[i] /= float32(len(paths))
		}
	}
	return sum, nil
}

func printTopPatches(w io.Writer, res []patching.Result, base float64, n int) {
	order := make([]int, len(res))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool {
		return math.Abs(res[order[i]].Metric-base) > math.Abs(res[order[j]].Metric-base)
	})
	for _, i := range order[:min(n, len(order))] {
		r := res[i]
		fmt.Fprintf(w, "  %-28s head %-3s token %-4s metric %+9.4f (recovered %+.3f)\n", r.Hook.Name(), idx(r.Head), idx(r.Token), r.Metric, r.Recovered)
	}
}

// idx prints a head or token index, "all" for -1.
func idx(i int) string {
	if i < 0 {
		return "all"
	}
	return strconv.Itoa(i)
}

func writePatchCSV(path string, res []patching.Result, est []float64, base float64) error {
	head := []string{"hook", "block", "head", "token", "metric", "effect", "recovered"}
	if est != nil {
		head = append(head, "attribution")
	}
	rows := [][]string{head}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 8, 64) }
	for i, r := range res {
		block := r.Hook.Block
		if !r.Hook.Point.PerBlock() {
			block = -1
		}
		row := []string{r.Hook.Name(), strconv.Itoa(block), strconv.Itoa(r.Head), strconv.Itoa(r.Token), f(r.Metric), f(r.Metric - base), f(r.Recovered)}
		if est != nil {
			row = append(row, f(est[i]))
		}
		rows = append(rows, row)
	}
	return writeCSV(path, rows)
}

// writePatchMaps draws the recovered fraction as heat-maps: per hook point,
// blocks × tokens (--per token), blocks × heads (head) or blocks × hook
// points (layer); per hook, heads × tokens (position).
func writePatchMaps(dir string, c vit.Config, res []patching.Result, per patching.Per) ([]string, error) {
	grids := map[string][][]float64{}
	var names []string
	put := func(name string, row, col, rows, cols int, v float64) {
		g, ok := grids[name]
		if !ok {
			g = make([][]float64, rows)
			for i := range g {
				g[i] = make([]float64, cols)
				for j := range g[i] {
					g[i][j] = math.NaN()
				}
			}
			grids[name] = g
			names = append(names, name)
		}
		g[row][col] = v
	}
	for _, r := range res {
		block := r.Hook.Block
		switch per {
		case patching.PerLayer:
			put("layer", block, int(r.Hook.Point), c.Depth, int(vit.NumHookPoints), r.Recovered)
		case patching.PerToken:
			put(r.Hook.Point.String(), block, r.Token, c.Depth, c.NumTokens(), r.Recovered)
		case patching.PerHead:
			put(r.Hook.Point.String(), block, r.Head, c.Depth, c.Heads, r.Recovered)
		case patching.PerPosition:
			put(r.Hook.Name(), r.Head, r.Token, c.Heads, c.NumTokens(), r.Recovered)
		}
	}
	var files []string
	for _, n := range names {
		file := "patch-" + strings.ReplaceAll(n, ".", "_") + ".png"
		if err := writeEncoded(filepath.Join(dir, file), func(w io.Writer) error {
			return png.Encode(w, patching.GridImage(grids[n], 16))
		}); err != nil {
			return nil, err
		}
		files = append(files, file)
	}
	return files, nil
}
