//go:build js && !purego

package vit

import "math"

func init() { attentionHeadsKernel = attentionHeadsInModule }

// attentionHeadsInModule runs Attention's heads in the threaded WebAssembly
// module (gemm.c's attentionHeads), one head a chunk on the caller and its
// helpers, if any: one call for all heads instead of two small products per
// head, each too small to share, with the softmax between them on the
// engine's one Go thread. It writes out's head columns and, when probs is not nil, the
// probabilities, and returns the heads it left to Go (an exponential out of
// Exp32's range); false where there is no threaded module.
func attentionHeadsInModule(out, qkv []float32, n, heads, dh int, scale float32, probs []float32) (left []bool, ran bool) {
	k := simd
	if !threadedModule() || k.headWords == 0 {
		return nil, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	d := heads * dh
	var l jobLayout
	stride := (4*k.headScratch.Invoke(n, dh).Int() + 63) &^ 63
	// The module's packB reads qkv up to three rows and a panel of columns
	// past its end (v's rows past n; the last head's columns past dh).
	pad := 3*3*d + gemmNR
	args, qkvOff, outOff, probsOff := l.part(4*headWords), l.part(4*(n*3*d+pad)), l.part(4*n*d), l.part(4*heads*n*n)
	status, scratchOff := l.part(4*heads), l.part(k.threads*stride)
	base := k.scratchAt(l.need)
	k.put(base+qkvOff, qkv[:n*3*d])
	k.putWords(base+args, []int32{headQKV: int32(base + qkvOff), headTokens: int32(n), headHeads: int32(heads),
		headDH: int32(dh), headScale: int32(math.Float32bits(scale)), headOut: int32(base + outOff),
		headProbs: int32(base + probsOff), headStatus: int32(base + status), headScratch: int32(base + scratchOff),
		headStride: int32(stride)})
	k.runJob(opAttentionHeads, base+args, heads, 1)
	k.get(out[:n*d], base+outOff)
	if probs != nil {
		k.get(probs[:heads*n*n], base+probsOff)
	}
	st := make([]int32, heads)
	k.getBytes(sliceBytes(st), base+status)
	left = make([]bool, heads)
	for h, s := range st {
		left[h] = s != 0
	}
	return left, true
}

// The attention job's words (gemm.c's T_ enum).
const (
	headQKV = iota
	headTokens
	headHeads
	headDH
	headScale
	headOut
	headProbs
	headStatus
	headScratch
	headStride
	headWords
)
