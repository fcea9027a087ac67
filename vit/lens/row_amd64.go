//go:build amd64 && !purego

package lens

import "vitlens/vit"

//go:noescape
func finishAVX2(dst, z, s, b *float32, n int, inv, negMeanInv float32)

//go:noescape
func copyMaxAVX2(dst, src *float32, n int, lanes *[8]float32)

//go:noescape
func rowSumsAVX2(v, e, p *float32, n int, above, shift float32, lanes *[3][8]float32) int

//go:noescape
func firstAboveAVX2(v *float32, n int, above float32) int

// vectorRows: the per-row passes in AVX2/FMA wherever vit's GEMM and
// activations run theirs (VITLENS_GEMM=go or scalar turn all of them off,
// so those runs test the Go twins end to end).
var vectorRows = vit.GEMMKernel() == "avx2"

// Each function below runs its kernel on the largest multiple of 8 of the
// row and returns how many elements it did (0 when the kernels are off).

func finishVector(dst, z, s, b []float32, inv, negMeanInv float32) int {
	n := len(dst) &^ 7
	if !vectorRows || n == 0 {
		return 0
	}
	_, _, _ = z[n-1], s[n-1], b[n-1]
	finishAVX2(&dst[0], &z[0], &s[0], &b[0], n, inv, negMeanInv)
	return n
}

func copyMaxVector(dst, src []float32, lanes *[8]float32) int {
	n := len(src) &^ 7
	if !vectorRows || n == 0 {
		return 0
	}
	_ = dst[n-1]
	copyMaxAVX2(&dst[0], &src[0], n, lanes)
	return n
}

func rowSumsVector(v, e, p []float32, above, shift float32, lanes *[3][8]float32) (done, count int) {
	n := len(v) &^ 7
	if !vectorRows || n == 0 {
		return 0, 0
	}
	_, _ = e[n-1], p[n-1]
	return n, rowSumsAVX2(&v[0], &e[0], &p[0], n, above, shift, lanes)
}

// firstAboveVector returns the index of the first v[i] > above among the
// elements it did, or how many it did when none is.
func firstAboveVector(v []float32, above float32) int {
	n := len(v) &^ 7
	if !vectorRows || n == 0 {
		return 0
	}
	return firstAboveAVX2(&v[0], n, above)
}
