//go:build !amd64 || purego

package vit

// block2x4 has no vector kernel here; matMulTRange uses its scalar loop.
func block2x4(a0, a1, b0, b1, b2, b3 []float32, s *[8]float32) bool { return false }
