//go:build amd64 && !purego

package vit

import (
	"math"

	"golang.org/x/sys/cpu"
)

//go:noescape
func geluAVX2(x *float32, n int, c *[8]float32)

//go:noescape
func epilogue16AVX2(c *float32, ldc, rows int, bias *float32, gelu bool, t *[8]float32)

//go:noescape
func softmaxAVX2(x *float32, n int, scale float32, c *[8]float32)

//go:noescape
func expShiftAVX2(x *float32, n int, shift float32, c *[8]float32) float32

// vectorActivations: GELU and the softmax's exponentials in AVX2/FMA, on
// the machines whose GEMM kernel is avx2 (VITLENS_GEMM=go or scalar turn
// them off too, so those runs test the Go twins end to end).
var vectorActivations = cpu.X86.HasAVX2 && cpu.X86.HasFMA && activeKernel != nil && activeKernel.name == "avx2"

// geluTable and expTable hold the kernels' constants, each in eight lanes
// (the order is the assembly's offsets: 32 bytes apart).
var geluTable = lanes([]float32{
	-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
	-7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02, // numerator
	-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
	-1.42647390514189e-02, // denominator
	invSqrt2, 4, -4, 0.5, 1,
})

var expTable = lanes([]float32{
	-87.33654, log2e, 0.693359375, -2.12194440e-4,
	1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1,
	1, math.Float32frombits(127),
})

func lanes(c []float32) [][8]float32 {
	t := make([][8]float32, len(c))
	for i, v := range c {
		for l := range t[i] {
			t[i][l] = v
		}
	}
	return t
}

// geluVector runs the vector kernel on the largest multiple of 8 of x and returns
// how many it did.
func geluVector(x []float32) int {
	n := len(x) &^ 7
	if !vectorActivations || n == 0 {
		return 0
	}
	geluAVX2(&x[0], n, &geluTable[0])
	return n
}

// geluGradVector: no vector kernel here (the Go loop is a small part of a
// native explanation).
func geluGradVector(g, x []float32) int { return 0 }

// expShiftVector does x[i] = e^(x[i]-shift) on the largest multiple of 8 of
// x and returns how many it did and their sum.
func expShiftVector(x []float32, shift float32) (int, float64) {
	n := len(x) &^ 7
	if !vectorActivations || n == 0 {
		return 0, 0
	}
	return n, float64(expShiftAVX2(&x[0], n, shift, &expTable[0]))
}

// epilogueVector runs the GEMM's epilogue (bias, then GELU when gelu is set)
// on `rows` rows of 16 floats of c (row stride ldc) in the vector kernel,
// and reports whether it did; bias is nil or 16 floats.
func epilogueVector(c []float32, ldc, rows int, bias []float32, gelu bool) bool {
	if !vectorActivations || rows == 0 {
		return false
	}
	_ = c[(rows-1)*ldc+15]
	var b *float32
	if bias != nil {
		b = &bias[:16][0]
	}
	epilogue16AVX2(&c[0], ldc, rows, b, gelu, &geluTable[0])
	return true
}

// softmaxVector runs the attention's scaled softmax (softmaxAVX2) on the
// first n floats of row, a padded row whose length is a multiple of 8: the
// pad is set to -Inf first, so that it adds nothing. It reports whether it
// did.
func softmaxVector(row []float32, n int, scale float32) bool {
	if !vectorActivations || n == 0 || len(row)%8 != 0 || len(row) < n {
		return false
	}
	for i := n; i < len(row); i++ {
		row[i] = float32(math.Inf(-1))
	}
	softmaxAVX2(&row[0], len(row), scale, &expTable[0])
	return true
}
