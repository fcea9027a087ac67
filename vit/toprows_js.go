//go:build js && !purego

package vit

// TopRows writes, for every row of width floats of each x[i], the indices
// of its k largest, largest first, ties to the lower index, into dst[i]
// (k per row): lens.TopK row by row (its Go loop is the twin, bit for bit),
// in the threaded WebAssembly module (gemm.c's topRows), rows shared among
// the caller and its helpers, if any: memory.TokenTop's rows, 9 M floats per
// B/16 image, which Go's one thread would otherwise read alone. It is
// false, dst untouched, where there is no threaded module (threadedModule)
// or k < 1.
func TopRows(dst [][]int32, x [][]float32, width, k int) bool {
	if !threadedModule() || simd.topRowWords == 0 || k < 1 || width < 1 {
		return false
	}
	kern := simd
	kern.mu.Lock()
	defer kern.mu.Unlock()
	rows := 0
	for _, xi := range x {
		rows += len(xi) / width
	}
	var l jobLayout
	args, xOff, outOff := l.part(4*topRowWords), l.part(4*rows*width), l.part(4*rows*k)
	base := kern.scratchAt(l.need)
	at := 0
	for _, xi := range x {
		r := len(xi) / width
		kern.put(base+xOff+4*at*width, xi[:r*width])
		at += r
	}
	kern.putWords(base+args, []int32{topRowsX: int32(base + xOff), topRowsWidth: int32(width), topRowsK: int32(k),
		topRowsOut: int32(base + outOff)})
	kern.runJob(opTopRows, base+args, rows, max(1, topRowsWork/width))
	at = 0
	for i, xi := range x {
		r := len(xi) / width
		kern.getBytes(sliceBytes(dst[i][:r*k]), base+outOff+4*at*k)
		at += r
	}
	return true
}

// topRowsWork is about a chunk's floats: a scan of 64 K floats, mostly
// four at a time, is tens of microseconds, above a helper's wake-up
// (B/16's memories: 16 tokens of 3072 or 85 of 768).
const topRowsWork = 1 << 16

// The top-rows job's words (gemm.c's K_ enum).
const (
	topRowsX = iota
	topRowsWidth
	topRowsK
	topRowsOut
	topRowWords
)
