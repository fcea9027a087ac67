//go:build !js || purego

package vit

// No LayerNorm backward kernel here: vit/explain runs it in Go.
func LayerNormBackwardRows(gx, gy, x, w []float32, rows, d int, eps float32) bool { return false }
