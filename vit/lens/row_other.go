//go:build !amd64 || purego

package lens

// No vector row passes here: the Go loops in row.go do all of it.

func finishVector(dst, z, s, b []float32, inv, negMeanInv float32) int { return 0 }

func copyMaxVector(dst, src []float32, lanes *[8]float32) int { return 0 }

func rowSumsVector(v, e, p []float32, above, shift float32, lanes *[3][8]float32) (done, count int) {
	return 0, 0
}

func firstAboveVector(v []float32, above float32) int { return 0 }

// vectorRows is false: there are no kernels to turn on.
var vectorRows = false
