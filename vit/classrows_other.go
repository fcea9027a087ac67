//go:build !js || purego

package vit

// No class-row kernel here: the lens reads its rows in Go, on the
// goroutines it starts itself.
func ClassRowsKernel() bool { return false }

func ReadClassRows(j *ClassRows) bool { return false }
