//go:build !js || purego

package vit

// No attention backward kernel here: vit/explain runs the heads in Go, each
// product on the GEMM's own threads.
func AttentionBackwardKernel() bool { return false }

func AttentionBackwardHeads(gProbs, gQKV, qkv, probs, gHeads []float32, n, heads, dh int, scale float32) bool {
	return false
}
