package gpu

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"vitlens/vit"
	"vitlens/vit/lens"
	"vitlens/vit/patching"
)

// Benchmarks: `go test -bench . ./gpu/`. On lavapipe they measure a CPU
// emulating a GPU; only numbers from a real adapter mean anything. Set
// VITLENS_BENCH_B16=1 to add a ViT-B/16-sized random model.

var cfgDemo = vit.Config{ImageSize: 28, PatchSize: 7, Channels: 3, Dim: 64, Depth: 6, Heads: 4, MLPDim: 256,
	Classes: 10, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}

var cfgB16 = vit.Config{ImageSize: 224, PatchSize: 16, Channels: 3, Dim: 768, Depth: 12, Heads: 12, MLPDim: 3072,
	Classes: 1000, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}

func benchConfigs() map[string]vit.Config {
	cs := map[string]vit.Config{"demo": cfgDemo}
	if os.Getenv("VITLENS_BENCH_B16") == "1" {
		cs["b16"] = cfgB16
	}
	return cs
}

func BenchmarkAnalyze(bm *testing.B) {
	for name, c := range benchConfigs() {
		m := randomModel(bm, c, 1)
		b := newBackend(bm, m)
		for _, batch := range []int{1, 8, 32} {
			for _, req := range []struct {
				name string
				r    lens.Request
			}{{"forward", lens.Request{TopK: 1}}, {"lens_all_sites", ProfileRequest}} {
				bm.Run(fmt.Sprintf("%s/batch=%d/%s", name, batch, req.name), func(bm *testing.B) {
					images := vit.RandomImages(c, batch, 5)
					if _, err := b.Analyze(images, req.r); err != nil {
						bm.Fatal(err)
					}
					bm.ResetTimer()
					for bm.Loop() {
						if _, err := b.Analyze(images, req.r); err != nil {
							bm.Fatal(err)
						}
					}
					bm.ReportMetric(float64(bm.N*batch)/bm.Elapsed().Seconds(), "images/s")
				})
			}
		}
	}
}

func TestProfileReport(t *testing.T) {
	m := randomModel(t, cfgDemo, 1)
	b := newBackend(t, m)
	r, err := b.Profile([]int{1, 4}, 2, ProfileRequest)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Batches) != 2 || len(r.Batches[0].Ops) == 0 || r.Batches[1].PerImage <= 0 {
		t.Fatalf("incomplete report: %+v", r)
	}
	var names []string
	for _, o := range r.Batches[0].Ops {
		names = append(names, o.Op)
	}
	for _, want := range []string{"matmul.qkv", "attention", "lens", "layernorm"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("no %s in the profile's ops %v", want, names)
		}
	}
	// Each op names the kernels it ran: the demo model's products are tiled
	// (k = 64, 256), its heads (16 wide) take the fused attention.
	s := r.String()
	for op, kernel := range map[string]string{"matmul.qkv": "matmul_64x64", "attention": "flash_attention", "matmul.head": "matmul"} {
		for _, o := range r.Batches[0].Ops {
			if o.Op == op && !slices.Equal(o.Kernels, []string{kernel}) {
				t.Errorf("%s ran %v, want %s", op, o.Kernels, kernel)
			}
		}
		if !strings.Contains(s, kernel) {
			t.Errorf("the report names no %s:\n%s", kernel, s)
		}
	}
	// Where the device has timestamp-query the per-op times come from it;
	// every op then has a time (no op is left unmeasured).
	if want := "timestamp-query"; b.d.timestamps != strings.HasPrefix(r.Batches[0].Timing, want) {
		t.Errorf("device timestamps %v, per-op timing %q", b.d.timestamps, r.Batches[0].Timing)
	}
	for _, bp := range r.Batches {
		for _, o := range bp.Ops {
			if o.Time <= 0 {
				t.Errorf("batch %d: op %s has no time", bp.Batch, o.Op)
			}
		}
	}
	t.Logf("\n%s", s)
}

func TestPeakFP32(t *testing.T) {
	for desc, want := range map[string]float64{
		"NVIDIA H200 (vulkan, discrete-gpu)":         67,
		"NVIDIA H100 PCIe (vulkan, discrete-gpu)":    51,
		"NVIDIA H100 80GB HBM3 (vulkan)":             67,
		"llvmpipe (LLVM 15, 256 bits) (vulkan, cpu)": 0,
	} {
		if got := PeakFP32(desc); got != want {
			t.Errorf("PeakFP32(%q) = %g, want %g", desc, got, want)
		}
	}
}

// BenchmarkPatchLogits: the patches of `vitlens patch --hooks
// 'blocks.*.hook_resid_pre' --per token` (every block's stream, one token at
// a time) on the GPU backend and, as the peer in the same run, on
// patching.CPU. patches/s is what to compare; on lavapipe neither figure
// says anything about a GPU.
func BenchmarkPatchLogits(bm *testing.B) {
	for name, c := range benchConfigs() {
		m := randomModel(bm, c, 1)
		b := newBackend(bm, m)
		images := vit.RandomImages(c, 2, 6)
		hooks, err := c.MatchHooks("blocks.*.hook_resid_pre")
		if err != nil {
			bm.Fatal(err)
		}
		sites, err := patching.Sites(c, hooks, patching.PerToken, c.NumTokens())
		if err != nil {
			bm.Fatal(err)
		}
		src, _, err := patching.Run{Model: m}.Cache(images[0], hooks)
		if err != nil {
			bm.Fatal(err)
		}
		for _, p := range []struct {
			name string
			p    patching.Patcher
		}{{"gpu", b}, {"cpu", patching.CPU{Model: m}}} {
			bm.Run(fmt.Sprintf("%s/%d_patches/%s", name, len(sites), p.name), func(bm *testing.B) {
				for bm.Loop() {
					if _, err := p.p.PatchLogits(images[1], sites, src, vit.EditNone); err != nil {
						bm.Fatal(err)
					}
				}
				bm.ReportMetric(float64(bm.N*len(sites))/bm.Elapsed().Seconds(), "patches/s")
			})
		}
	}
}
