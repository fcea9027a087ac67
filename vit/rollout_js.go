//go:build js && !purego

package vit

// RolloutRows fills out (n×n, float64) with Σ_h max(0, gProbs[h,k,j]·
// probs[h,k,j]), the heads in order: the rows of Chefer's rollout matrix
// before the mean over heads (vit/explain's chefer, whose Go loop is its
// twin, bit for bit), in the threaded WebAssembly module (gemm.c's
// rolloutRows), rows shared among the caller and its helpers, if any. It is false,
// out untouched, where there is no threaded module (threadedModule).
func RolloutRows(out []float64, gProbs, probs []float32, n, heads int) bool {
	if !threadedModule() || simd.rolloutWords == 0 {
		return false
	}
	k := simd
	k.mu.Lock()
	defer k.mu.Unlock()
	var l jobLayout
	args, gOff, pOff, outOff := l.part(4*rolloutWords), l.part(4*heads*n*n), l.part(4*heads*n*n), l.part(8*n*n)
	base := k.scratchAt(l.need)
	k.put(base+gOff, gProbs[:heads*n*n])
	k.put(base+pOff, probs[:heads*n*n])
	k.putWords(base+args, []int32{rolloutGProbs: int32(base + gOff), rolloutProbs: int32(base + pOff),
		rolloutOut: int32(base + outOff), rolloutTokens: int32(n), rolloutHeads: int32(heads)})
	k.runJob(opRolloutRows, base+args, n, rolloutRowsPerChunk)
	k.getBytes(sliceBytes(out[:n*n]), base+outOff)
	return true
}

// rolloutRowsPerChunk: a row is 12·197 multiply-adds at B/16, so 16 rows
// are a few tens of microseconds, above a helper's wake-up.
const rolloutRowsPerChunk = 16

// The rollout job's words (gemm.c's W_ enum).
const (
	rolloutGProbs = iota
	rolloutProbs
	rolloutOut
	rolloutTokens
	rolloutHeads
	rolloutWords
)
