//go:build amd64 && !purego

package vit

import "golang.org/x/sys/cpu"

// hasAVX2 selects the AVX2/FMA kernel; the scalar 2×4 loop is its twin and
// runs everywhere else (other CPUs, wasm, the purego tag).
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func dot2x4AVX2(a0, a1, b0, b1, b2, b3 *float32, k int, acc *[64]float32)

// block2x4 computes the 2×4 dot products of rows a0,a1 with b0..b3 into s
// (row-major), using AVX2 for the largest multiple of 8 elements.
func block2x4(a0, a1, b0, b1, b2, b3 []float32, s *[8]float32) bool {
	k := len(a0) &^ 7
	if !hasAVX2 || k == 0 {
		return false
	}
	var acc [64]float32
	dot2x4AVX2(&a0[0], &a1[0], &b0[0], &b1[0], &b2[0], &b3[0], k, &acc)
	for o := 0; o < 8; o++ {
		l := acc[8*o : 8*o+8]
		s[o] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
	}
	for p := k; p < len(a0); p++ {
		x0, x1 := a0[p], a1[p]
		s[0] += x0 * b0[p]
		s[1] += x0 * b1[p]
		s[2] += x0 * b2[p]
		s[3] += x0 * b3[p]
		s[4] += x1 * b0[p]
		s[5] += x1 * b1[p]
		s[6] += x1 * b2[p]
		s[7] += x1 * b3[p]
	}
	return true
}
