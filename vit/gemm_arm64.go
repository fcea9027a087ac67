//go:build arm64 && !purego

package vit

//go:noescape
func gemm6x16NEON(a, b, c *float32, kc, ldc int, accumulate bool)

//go:noescape
func fmaPeakNEON(iters int)

// Advanced SIMD (NEON) is part of every arm64 CPU Go runs on (Go's own
// runtime uses it unconditionally), so the kernel needs no feature check.

// fmaPeak runs the FMA-throughput loop and returns the FLOPs it did: the
// benchmarks' measure of a core's peak.
func fmaPeak(iters int) float64 {
	fmaPeakNEON(iters)
	return float64(iters) * 16 * 8
}

func asmKernels() []gemmKernel { return []gemmKernel{{name: "neon", run: gemm6x16NEON}} }
