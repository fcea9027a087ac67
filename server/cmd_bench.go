package main

import (
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	"vitlens/gpu"
	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/lens"
)

func init() {
	register("bench", "time the forward pass and the lens per image (demo model and a B/16-sized random model)", runBench)
}

// B16 is the ViT-B/16 architecture (timm vit_base_patch16_224).
var B16 = vit.Config{ImageSize: 224, PatchSize: 16, Channels: 3, Dim: 768, Depth: 12, Heads: 12, MLPDim: 3072,
	Classes: 1000, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}

// benchModel is a model the benchmark times.
type benchModel struct {
	name string
	m    *vit.Model
}

func runBench(args []string, stdout io.Writer) error {
	fs := newFlags("bench", "")
	backend := fs.String("backend", "cpu", "cpu, gpu or auto")
	reps := fs.Int("reps", 3, "timed repetitions per measurement (after one warm-up)")
	batch := fs.Int("batch", 1, "images per backend call")
	skipB16 := fs.Bool("no-b16", false, "skip the B/16-sized model")
	batches := fs.String("batches", "1,8,64", "with --backend gpu: batch sizes of the per-op profile")
	peak := fs.Float64("peak-tflops", 0, "with --backend gpu: the GPU's fp32 peak in TFLOP/s, for the per-op share of peak (known GPUs such as the H100 and H200 need none)")
	f16 := fs.Bool("gpu-f16", false, "with --backend gpu: also time the GPU with f16 weights (f32 arithmetic) and measure how far they move the lens's ranks from f32 weights, and the weights' memory")
	f16Images := fs.Int("f16-images", 8, "with --gpu-f16: random images compared")
	siteList := fs.String("sites", "hs,hs_mid,attn,mlp", "sites the timed lens projects at every block")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sites, err := parseSites(*siteList)
	if err != nil {
		return fmt.Errorf("--sites: %w", err)
	}
	demo, err := bundle.Demo(bundle.Options{})
	if err != nil {
		return err
	}
	if err := (&lens.Request{Sites: sites, TopK: 5}).Validate(demo.Model.Config, 1); err != nil {
		return fmt.Errorf("--sites: %w", err)
	}
	models := []benchModel{{"demo (Fashion-MNIST ViT)", demo.Model}}
	if !*skipB16 {
		b16, err := vit.NewRandom(B16, 1)
		if err != nil {
			return err
		}
		models = append(models, benchModel{"B/16 random", b16})
	}
	fmt.Fprintf(stdout, "%d CPU threads (GOMAXPROCS), %d reps after a warm-up, batch %d\n", runtime.GOMAXPROCS(0), *reps, *batch)
	fmt.Fprintf(stdout, "wall: best run's time per image; cpu: CPU time of the process (all threads) per image, best run\n")
	fmt.Fprintf(stdout, "lens: %d sites (%s)\n", len(sites), *siteList)
	fmt.Fprintf(stdout, "%-26s %-28s %12s %14s %10s %12s %14s %10s\n", "model", "backend", "forward/img", "+lens", "lens cost",
		"cpu forward", "cpu +lens", "cpu cost")
	if *f16 && *backend != "gpu" {
		return fmt.Errorf("--gpu-f16 goes with --backend gpu (the %s backend has no f16 weights)", *backend)
	}
	if *backend == "gpu" {
		sizes, err := parseInts(*batches)
		if err != nil {
			return err
		}
		for _, mm := range models {
			rep, err := gpu.Profile(mm.m, sizes, *reps)
			if err != nil {
				return err
			}
			if *peak > 0 {
				rep.PeakTFLOPS = *peak
			}
			fmt.Fprintf(stdout, "\n%s\n%s\n", mm.name, rep)
		}
		if *f16 {
			fmt.Fprintf(stdout, "\n%s\n", gpu.ShaderF16Notice())
			for _, mm := range models {
				imgs := vit.RandomImages(mm.m.Config, max(1, *f16Images), 7)
				a, err := gpu.CompareF16(mm.m, openGPU, imgs, gpu.ProfileRequest)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s: %s\n", mm.name, a)
			}
		}
	}
	storage := []bool{false}
	if *f16 {
		storage = append(storage, true) // the same table for f16 weights
	}
	for _, run := range benchRuns(models, storage) {
		mm := run.model
		b, err := openBackend(*backend, mm.m, run.f16, io.Discard)
		if err != nil {
			return err
		}
		imgs := vit.RandomImages(mm.m.Config, *batch, 1)
		plain := lens.Request{Sites: []vit.Site{vit.SiteHS}, TopK: 5}
		all := lens.Request{Sites: sites, TopK: 5}
		// The plain forward is measured through the same backend with the
		// cheapest readout (one site), so both numbers include the same
		// preprocessing-free path; the CPU forward alone is timed too.
		forward := func() error {
			for _, img := range imgs {
				if _, err := mm.m.Forward(img, vit.Options{}); err != nil {
					return err
				}
			}
			return nil
		}
		if *backend != "cpu" {
			forward = func() error { _, err := b.Analyze(imgs, plain); return err }
		}
		best, err := timeEach(*reps, forward, func() error { _, err := b.Analyze(imgs, all); return err })
		if err != nil {
			return err
		}
		per := func(d time.Duration) time.Duration { return (d / time.Duration(len(imgs))).Round(time.Microsecond) }
		cost := func(fwd, full time.Duration) string {
			if fwd <= 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f%%", 100*(float64(full)/float64(fwd)-1))
		}
		fwd, full := best[0], best[1]
		fmt.Fprintf(stdout, "%-26s %-28s %12s %14s %10s %12s %14s %10s\n", mm.name, b.Name(), per(fwd.wall), per(full.wall),
			cost(fwd.wall, full.wall), per(fwd.cpu), per(full.cpu), cost(fwd.cpu, full.cpu))
		b.Close()
	}
	return nil
}

// benchRun is one row of the timing table: a model on one weight storage.
type benchRun struct {
	model benchModel
	f16   bool
}

// benchRuns is every model on every storage, a model's rows together.
func benchRuns(models []benchModel, storage []bool) []benchRun {
	var runs []benchRun
	for _, m := range models {
		for _, f16 := range storage {
			runs = append(runs, benchRun{m, f16})
		}
	}
	return runs
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad batch size %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// timing is a run's wall time and the process's CPU time over it.
type timing struct{ wall, cpu time.Duration }

// timeEach runs each f once to warm up, then all of them in turn reps
// times, and returns each one's best wall and best CPU time (each the least
// disturbed by other processes on a shared machine). Taking turns makes slow
// spells of a shared machine fall on all of them alike, so their ratio holds.
func timeEach(reps int, fs ...func() error) ([]timing, error) {
	best := make([]timing, len(fs))
	for i, f := range fs {
		if err := f(); err != nil {
			return nil, err
		}
		best[i] = timing{1<<63 - 1, 1<<63 - 1}
	}
	for range reps {
		for i, f := range fs {
			t, c := time.Now(), processCPUTime()
			if err := f(); err != nil {
				return nil, err
			}
			best[i].wall = min(best[i].wall, time.Since(t))
			best[i].cpu = min(best[i].cpu, processCPUTime()-c)
		}
	}
	return best, nil
}
