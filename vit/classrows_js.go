//go:build js && !purego

package vit

import (
	"math"
	"unsafe"
)

// ClassRowsKernel reports whether ReadClassRows runs: the threaded module
// (at any thread count) on the matmul's path. The single-threaded module has
// no class-row kernel: it must stay under 4 KiB, which Chromium compiles on
// the page's main thread.
func ClassRowsKernel() bool { return threadedModule() && simd.classRowWords > 0 }

// threadedModule reports whether the matmul runs in the threaded build, on
// which the lens's rows and attention's heads may run too: with its helpers
// where it has some, else on the caller alone (runChunks).
func threadedModule() bool { return simd != nil && simd.threaded && GEMMKernel() == "simd" }

// ReadClassRows runs j in the threaded WebAssembly module (gemm.c's
// classRows) on the caller and its helper threads, if any, filling j.Out
// and j.Top. It is false, j untouched, where ClassRowsKernel is false. The
// lens's tests compare every row with its Go twin.
func ReadClassRows(j *ClassRows) bool {
	if !ClassRowsKernel() {
		return false
	}
	k := simd
	k.mu.Lock()
	defer k.mu.Unlock()
	rows, c := j.Rows(), j.Classes
	cp := (c + 3) &^ 3
	j.Out, j.Top = make([]float64, 5*rows), make([]int32, j.K*rows)
	var l jobLayout
	args, z, h := l.part(4*classRowWords), l.part(4*rows*c), l.part(4*rows*j.Dim)
	sOff, biasOff, ref := l.part(4*c), l.part(4*c), l.part(4*j.Tokens*c)
	threadRows, out, top := l.part(4*k.threads*2*cp), l.part(8*5*rows), l.part(4*j.K*rows)
	base := k.scratchAt(l.need)
	for i := range j.Z {
		k.put(base+z+4*i*j.Tokens*c, j.Z[i][:j.Tokens*c])
		k.put(base+h+4*i*j.Tokens*j.Dim, j.H[i][:j.Tokens*j.Dim])
	}
	k.put(base+sOff, j.S[:c])
	k.put(base+biasOff, j.Bias[:c])
	k.put(base+ref, j.Ref[:j.Tokens*c])
	k.putWords(base+args, []int32{rowZ: int32(base + z), rowH: int32(base + h), rowDim: int32(j.Dim),
		rowEps: int32(math.Float32bits(j.Eps)), rowS: int32(base + sOff),
		rowBias: int32(base + biasOff), rowRef: int32(base + ref), rowTokens: int32(j.Tokens), rowClasses: int32(c),
		rowTarget: int32(j.Target), rowK: int32(j.K), rowScratch: int32(base + threadRows), rowOut: int32(base + out),
		rowTop: int32(base + top)})
	k.runJob(opClassRows, base+args, rows, classRowsPerChunk)
	k.getBytes(sliceBytes(j.Out), base+out)
	k.getBytes(sliceBytes(j.Top), base+top)
	return true
}

// classRowsPerChunk: a row is a few microseconds in the module (1000
// classes), so a chunk of 16 is well above a helper's wake-up and a B/16
// block's 788 rows make about 50 chunks to share.
const classRowsPerChunk = 16

// The class-row job's words (gemm.c's R_ enum) and its op (OP_CLASS_ROWS).
const (
	rowZ = iota
	rowH
	rowDim
	rowEps
	rowS
	rowBias
	rowRef
	rowTokens
	rowClasses
	rowTarget
	rowK
	rowScratch
	rowOut
	rowTop
	classRowWords
)

func sliceBytes[T float64 | int32](x []T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), int(unsafe.Sizeof(x[0]))*len(x))
}
