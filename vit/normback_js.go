//go:build js && !purego

package vit

import "math"

// LayerNormBackwardRows writes gx = ∂L/∂x for rows vectors of width d of a
// LayerNorm with weights w, given gy = ∂L/∂y and the forward input x
// (gx may be gy), in the threaded WebAssembly module (gemm.c's
// normBackwardRows), rows shared among the caller and its helpers, if any:
// vit/explain's LayerNormBackward, whose Go loop is its twin, bit for bit,
// ran on the engine's one Go thread, a twentieth of a B/16 explanation at
// 2 threads. It is false, nothing written, where there is no threaded
// module (threadedModule).
func LayerNormBackwardRows(gx, gy, x, w []float32, rows, d int, eps float32) bool {
	if !threadedModule() || simd.normBackWords == 0 || rows == 0 {
		return false
	}
	k := simd
	k.mu.Lock()
	defer k.mu.Unlock()
	var l jobLayout
	args, gOff, xOff, wOff := l.part(4*normBackWords), l.part(4*rows*d), l.part(4*rows*d), l.part(4*d)
	base := k.scratchAt(l.need)
	k.put(base+gOff, gy[:rows*d])
	k.put(base+xOff, x[:rows*d])
	k.put(base+wOff, w[:d])
	k.putWords(base+args, []int32{normBackGX: int32(base + gOff), normBackGY: int32(base + gOff),
		normBackX: int32(base + xOff), normBackW: int32(base + wOff), normBackD: int32(d),
		normBackEps: int32(math.Float32bits(eps))})
	k.runJob(opNormBackward, base+args, rows, normBackRowsPerChunk)
	k.get(gx[:rows*d], base+gOff)
	return true
}

// normBackRowsPerChunk: a row is a few microseconds at B/16's 768, so 16
// rows are a few tens, above a helper's wake-up.
const normBackRowsPerChunk = 16

// The LayerNorm backward job's words (gemm.c's N_ enum).
const (
	normBackGX = iota
	normBackGY
	normBackX
	normBackW
	normBackD
	normBackEps
	normBackWords
)
