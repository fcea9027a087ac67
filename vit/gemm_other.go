//go:build (!amd64 && !arm64) || purego

package vit

// No assembly micro-kernel here (other CPUs, WebAssembly, the purego tag):
// MatMulT runs its scalar 2×4 loop.

func fmaPeak(iters int) float64 { return 0 }

func asmKernels() []gemmKernel { return nil }
