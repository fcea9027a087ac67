//go:build (!amd64 && !arm64 && !js) || purego

package vit

// No assembly micro-kernel here (other CPUs, WASI, the purego tag): MatMulT
// runs its scalar 2×4 loop. The browser build has its SIMD module instead
// (gemm_js.go).

func fmaPeak(iters int) float64 { return 0 }

func asmKernels() []gemmKernel { return nil }
