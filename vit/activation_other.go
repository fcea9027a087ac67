//go:build (!amd64 && !js) || purego

package vit

// No vector GELU or exponentials here: the Go loops do all of it.

func geluVector(x []float32) int { return 0 }

func geluGradVector(g, x []float32) int { return 0 }

func expShiftVector(x []float32, shift float32) (int, float64) { return 0, 0 }

func epilogueVector(c []float32, ldc, rows int, bias []float32, gelu bool) bool { return false }

func softmaxVector(row []float32, n int, scale float32) bool { return false }
