//go:build amd64 && !purego

package vit

import "golang.org/x/sys/cpu"

//go:noescape
func gemm6x16AVX2(a, b, c *float32, kc, ldc int, accumulate bool)

//go:noescape
func prefetchAVX2(p *float32, lines int)

//go:noescape
func fmaPeakAVX2(iters int)

// fmaPeak runs the FMA-throughput loop when the CPU has AVX2/FMA and returns
// the FLOPs it did (0 without it): the benchmarks' measure of a core's peak.
func fmaPeak(iters int) float64 {
	if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
		return 0
	}
	fmaPeakAVX2(iters)
	return float64(iters) * 10 * 16
}

func asmKernels() []gemmKernel {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		return []gemmKernel{{name: "avx2", run: gemm6x16AVX2, prefetch: prefetchAVX2}}
	}
	return nil
}
