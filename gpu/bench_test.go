package gpu

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"vitlens/vit"
	"vitlens/vit/lens"
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
	t.Logf("\n%s", r)
}

// The % of peak column: from the flag, else from the table by adapter name.
func TestReportPeak(t *testing.T) {
	for _, c := range []struct {
		device string
		flag   float64
		want   float64
	}{
		{"NVIDIA H100 80GB HBM3 (vulkan, discrete-gpu)", 0, 67000},
		{"NVIDIA H100 PCIe (vulkan, discrete-gpu)", 0, 51200},
		{"NVIDIA A100-SXM4-80GB", 0, 19500},
		{"NVIDIA L40S", 0, 91600},
		{"llvmpipe (LLVM 15, 256 bits) (vulkan, cpu)", 0, 0},
		{"llvmpipe (LLVM 15, 256 bits) (vulkan, cpu)", 2.5, 2500},
	} {
		r := Report{Device: c.device, Batches: []BatchProfile{{Batch: 1, PerImage: time.Millisecond,
			Ops: []OpProfile{{Op: "matmul.qkv", Kernels: []string{"matmul_64x64"}, Dispatches: 1, Time: time.Millisecond, GFLOP: c.want / 2000}}}}}
		r.SetPeak(c.flag)
		if r.PeakGFLOPS != c.want {
			t.Errorf("%s, --peak-tflops %g: peak %g GFLOP/s, want %g", c.device, c.flag, r.PeakGFLOPS, c.want)
		}
		s := r.String()
		if !strings.Contains(s, "matmul_64x64") {
			t.Errorf("report names no kernel:\n%s", s)
		}
		if c.want > 0 && !strings.Contains(s, " 50.0") { // half the peak
			t.Errorf("report gives no 50.0 %% of peak:\n%s", s)
		}
		if c.want == 0 && !strings.Contains(s, "--peak-tflops") {
			t.Errorf("report does not say how to give the peak:\n%s", s)
		}
	}
}
