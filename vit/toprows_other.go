//go:build !js || purego

package vit

// No top-rows kernel here: memory.TokenTop reads its rows with lens.TopK.
func TopRows(dst [][]int32, x [][]float32, width, k int) bool { return false }
