//go:build js && !purego

package vit

// The browser build's vector activations run in the SIMD module
// (wasmkernel/gemm.c), whose float32 operations are the Go loops' in the
// same order, so they round as Go does: the Go loops (ops.go) are their
// twins. A call copies its operands in and out (a few MiB at most, against
// an erf and an exp per element). VITLENS_GEMM=scalar turns them off with
// the module's matmul, so those runs test the Go twins end to end.

func init() { matMulGELUGradKernel = matMulGELUGradInModule }

// matMulGELUGradInModule is Linear.MatMulGELUGrad in the threaded module:
// the product with GELU' as its epilogue (gemm.c's ARG_GELU_GRAD), false
// where there is no threaded module.
func matMulGELUGradInModule(out, a []float32, rows int, b layoutB, x []float32) bool {
	if !threadedModule() || rows == 0 {
		return false
	}
	simd.product(out, b.n, a, b.k, rows, b, epilogue{}, x)
	return true
}

// vectorActivations: the module is the active matmul path.
var vectorActivations = simd != nil && activeKernel != nil && activeKernel.name == "simd"

// geluVector applies GELU to x in the module (gelu, the GEMM epilogue's
// own) and returns how many it did: all of them.
func geluVector(x []float32) int {
	if !vectorActivations || len(x) == 0 {
		return 0
	}
	simd.gelu(x)
	return len(x)
}

// geluGradVector multiplies g by GELU'(x) in the module (geluGrad) and
// returns how many it did: all of them.
func geluGradVector(g, x []float32) int {
	if !vectorActivations || len(g) == 0 {
		return 0
	}
	simd.geluGrad(g, x)
	return len(g)
}

func expShiftVector(x []float32, shift float32) (int, float64) { return 0, 0 }

func epilogueVector(c []float32, ldc, rows int, bias []float32, gelu bool) bool { return false }

func softmaxVector(row []float32, n int, scale float32) bool { return false }

// geluGrad runs gemm.c's geluGrad on g and x, each copied into the scratch
// span with room for a whole last vector of four (which the module reads
// and writes past n).
func (k *simdKernel) geluGrad(g, x []float32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	stride := 4 * ((len(g) + 3) &^ 3)
	base := k.scratchAt(2 * stride)
	k.put(base, g)
	k.put(base+stride, x[:len(g)])
	k.geluGradFn.Invoke(base, base+stride, len(g))
	k.get(g, base)
}

// gelu runs gemm.c's gelu on x, copied into the scratch span and back: in
// the threaded build a job of runs of geluPerChunk floats, shared with the
// helpers (the forward's tapped pre-activations, 600 K floats a B/16 block,
// are otherwise milliseconds of the caller alone); elementwise, so any cut
// gives the same bits.
func (k *simdKernel) gelu(x []float32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	base := k.scratchAt(4 * len(x))
	k.put(base, x)
	if k.threaded {
		k.runJob(opGELU, base, len(x), geluPerChunk)
	} else {
		k.geluFn.Invoke(base, len(x))
	}
	k.get(x, base)
}

// geluPerChunk: GELU is a few nanoseconds a float in the module, so a
// chunk is tens of microseconds, above a helper's wake-up.
const geluPerChunk = 1 << 14
