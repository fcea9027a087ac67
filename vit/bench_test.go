package vit

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// B16 is ViT-B/16 (timm vit_base_patch16_224) for benchmarks.
var b16 = Config{ImageSize: 224, PatchSize: 16, Channels: 3, Dim: 768, Depth: 12, Heads: 12, MLPDim: 3072,
	Classes: 1000, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: PoolCLS}

// FLOPs of one forward (multiply-adds ×2): patch embed, qkv, scores,
// weighted values, proj, fc1, fc2 and the head.
func forwardFLOPs(c Config) float64 {
	n, d, m := float64(c.NumTokens()), float64(c.Dim), float64(c.MLPDim)
	perBlock := 2 * (n*d*3*d + 2*n*n*d + n*d*d + 2*n*d*m)
	return float64(c.Depth)*perBlock + 2*float64(c.NumPatches())*d*float64(c.Channels*c.PatchSize*c.PatchSize) + 2*d*float64(c.Classes)
}

// b32 is ViT-B/32: B/16 with 32-pixel patches (50 tokens).
var b32 = func() Config { c := b16; c.PatchSize = 32; return c }()

// benchModels builds each random benchmark model once per test binary.
var benchModels = map[string]func() (*Model, error){
	"B16": sync.OnceValues(func() (*Model, error) { return NewRandom(b16, 1) }),
	"B32": sync.OnceValues(func() (*Model, error) { return NewRandom(b32, 1) }),
}

// BenchmarkForward times ViT-B/16 and B/32 forwards (random weights) on
// batches of 1 and 8 images, the images of a batch in parallel over
// GOMAXPROCS goroutines as lens.CPU runs them; ms/image (of the best batch)
// is the figure tools/bench/compare_torch.py reads; cpu-ms/image is the
// process's CPU time (all threads) per image of the best batch.
func BenchmarkForward(b *testing.B) {
	for _, model := range []string{"B16", "B32"} {
		for _, batch := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/batch%d", model, batch), func(b *testing.B) {
				m, img := benchForwardInput(b, model)
				// The browser build's matmul helper workers (gemm_js.go)
				// start only while Go yields to the JavaScript event loop.
				time.Sleep(100 * time.Millisecond)
				// Best batch, in wall and in CPU time: other jobs only ever
				// slow one down.
				best, bestCPU := math.Inf(1), math.Inf(1)
				for b.Loop() {
					start, cpu := time.Now(), processCPU()
					forwardBatch(b, m, img, batch)
					best = min(best, time.Since(start).Seconds())
					bestCPU = min(bestCPU, processCPU()-cpu)
				}
				perImage := best / float64(batch)
				b.ReportMetric(perImage*1e3, "ms/image")
				if runtime.GOOS == "js" { // how many of the browser's threads took part, in which module
					b.ReportMetric(float64(GEMMThreads()), "gemm-threads")
					relaxed := 0.0
					if RelaxedSIMD() {
						relaxed = 1
					}
					b.ReportMetric(relaxed, "relaxed-simd")
				}
				if bestCPU > 0 {
					b.ReportMetric(bestCPU/float64(batch)*1e3, "cpu-ms/image")
				}
				b.ReportMetric(forwardFLOPs(m.Config)/perImage/1e9, "GFLOP/s")
			})
		}
	}
}

// forwardBatch runs `batch` forwards of img, GOMAXPROCS at a time.
func forwardBatch(b *testing.B, m *Model, img *Tensor, batch int) {
	Parallel(0, batch, func(int) {
		if _, err := m.Forward(img, Options{}); err != nil {
			b.Error(err)
		}
	})
}

// corePeak is one core's FP32 FMA throughput (GFLOP/s), measured once with
// an assembly loop of independent FMA chains: the best of 40 short runs
// (0.32 GFLOP each), so that some run has the core to itself. 0 when this
// build has no such loop (no AVX2/FMA, purego, other CPUs).
var corePeak = sync.OnceValue(func() float64 {
	best := 0.0
	for range 40 {
		start := time.Now()
		flops := fmaPeak(2_000_000)
		if flops == 0 {
			return 0
		}
		best = max(best, flops/time.Since(start).Seconds()/1e9)
	}
	return best
})

// BenchmarkMatMul runs the forward's products of ViT-B/16 (197 tokens) on
// the packed GEMM and, for the smaller ones, on the scalar 2×4 loop, printing
// the best product's GFLOP/s and its share of the cores' FMA peak (corePeak
// times GOMAXPROCS). Both are best-of-N: the machine is shared, and other
// jobs only ever slow a run down.
func BenchmarkMatMul(b *testing.B) {
	b.Logf("kernel %s on %d threads", GEMMKernel(), runtime.GOMAXPROCS(0))
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range []struct {
		name    string
		m, n, k int
	}{
		{"qkv_197x768x2304", 197, 2304, 768},
		{"proj_197x768x768", 197, 768, 768},
		{"fc1_197x768x3072", 197, 3072, 768},
		{"fc2_197x3072x768", 197, 768, 3072},
		{"scores_197x64x197", 197, 197, 64},
		{"values_197x197x64", 197, 64, 197},
		{"fc1_batch8_1576x768x3072", 8 * 197, 3072, 768},
	} {
		x, w, out := randSlice(rng, s.m*s.k), randSlice(rng, s.n*s.k), make([]float32, s.m*s.n)
		flops := 2 * float64(s.m*s.n*s.k)
		// Each product is timed alone and the best one reported: other jobs
		// on the machine only ever slow a run down.
		// cpu-GFLOP/s divides by the process's CPU time instead (per busy
		// core: what other jobs on the cores distort least), and
		// %peak-cpu compares it with one core's peak.
		timed := func(b *testing.B, run func()) {
			best, bestCPU := math.Inf(1), math.Inf(1)
			for b.Loop() {
				start, cpu := time.Now(), processCPU()
				run()
				best = min(best, time.Since(start).Seconds())
				bestCPU = min(bestCPU, processCPU()-cpu)
			}
			gflops := flops / best / 1e9
			b.ReportMetric(gflops, "GFLOP/s")
			if peak := corePeak() * float64(runtime.GOMAXPROCS(0)); peak > 0 {
				b.ReportMetric(peak, "peakGFLOP/s")
				b.ReportMetric(100*gflops/peak, "%peak")
			}
			if bestCPU > 0 {
				cpuGflops := flops / bestCPU / 1e9
				b.ReportMetric(cpuGflops, "cpu-GFLOP/s")
				if corePeak() > 0 {
					b.ReportMetric(100*cpuGflops/corePeak(), "%peak-cpu")
				}
			}
		}
		b.Run(s.name+"/packed", func(b *testing.B) {
			p := PackT(w, s.n, s.k)
			timed(b, func() { p.MatMulT(out, x, s.m, nil, false) })
		})
		if s.m*s.n*s.k > 200_000_000 {
			continue // the scalar loop takes seconds on the big ones
		}
		b.Run(s.name+"/scalar2x4", func(b *testing.B) {
			timed(b, func() { matMulTScalar(out, x, w, s.m, s.n, s.k) })
		})
	}
}

// BenchmarkMicroKernel runs each micro-kernel alone on one A and one B
// micro-panel (kc = gemmKC: 6 KiB and 16 KiB, both in L1) into one C tile,
// 1000 calls a round: the kernel's own ceiling, with no cache misses and no
// packing, to read BenchmarkMatMul's figures against.
func BenchmarkMicroKernel(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	a, bp := randSlice(rng, gemmKC*gemmMR), randSlice(rng, gemmKC*gemmNR)
	c := make([]float32, gemmMR*gemmNR)
	const calls = 1000
	flops := 2 * float64(gemmMR*gemmNR*gemmKC) * calls
	for _, kern := range kernels {
		b.Run(kern.name, func(b *testing.B) {
			best := math.Inf(1)
			for b.Loop() {
				start := time.Now()
				for range calls {
					kern.run(&a[0], &bp[0], &c[0], gemmKC, gemmNR, true)
				}
				best = min(best, time.Since(start).Seconds())
			}
			gflops := flops / best / 1e9
			b.ReportMetric(gflops, "GFLOP/s")
			if peak := corePeak(); peak > 0 {
				b.ReportMetric(100*gflops/peak, "%peak")
			}
		})
	}
}

// benchForwardInput is a benchmark model (benchModels) and a random image
// for it, after one forward that packs the weights and warms the caches.
func benchForwardInput(b *testing.B, model string) (*Model, *Tensor) {
	b.Helper()
	m, err := benchModels[model]()
	if err != nil {
		b.Fatal(err)
	}
	c := m.Config
	rng := rand.New(rand.NewPCG(1, 1))
	img := &Tensor{Shape: []int{3, c.ImageSize, c.ImageSize}, Data: randSlice(rng, 3*c.ImageSize*c.ImageSize)}
	if _, err := m.Forward(img, Options{}); err != nil {
		b.Fatal(err)
	}
	return m, img
}
