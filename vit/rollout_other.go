//go:build !js || purego

package vit

// No rollout kernel here: vit/explain sums the rollout's rows in Go.
func RolloutRows(out []float64, gProbs, probs []float32, n, heads int) bool { return false }
