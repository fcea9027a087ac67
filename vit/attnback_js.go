//go:build js && !purego

package vit

import "math"

// AttentionBackwardKernel reports whether AttentionBackwardHeads runs: the
// threaded module, on the matmul's path (threadedModule).
func AttentionBackwardKernel() bool { return threadedModule() && simd.backHeadWords > 0 }

// AttentionBackwardHeads runs the backward of attention's heads
// (vit/explain's attentionBackward, whose Go loop is its twin) in the
// threaded WebAssembly module (gemm.c's attentionBackwardHeads), one head a
// chunk on the caller and its helpers, if any: one call for all heads instead of
// four products per head, each too small to share, with the gathers and
// softmax' between them on the engine's one Go thread. Given the forward's
// qkv (n×3D) and probabilities (H×n×n) and gHeads = ∂L/∂(head outputs)
// (n×D), it writes ∂L/∂A into gProbs (H×n×n) and, when gQKV is not nil,
// ∂L/∂qkv into gQKV (n×3D, every element), scale being 1/√dh. It is false,
// nothing written, where AttentionBackwardKernel is false.
func AttentionBackwardHeads(gProbs, gQKV, qkv, probs, gHeads []float32, n, heads, dh int, scale float32) bool {
	if !AttentionBackwardKernel() {
		return false
	}
	k := simd
	k.mu.Lock()
	defer k.mu.Unlock()
	d := heads * dh
	var l jobLayout
	// The module's packB reads a B operand up to three rows and a panel of
	// columns past its end: qkv (∂L/∂S·K) and the last head's probabilities
	// (Gᵀ·A) get that much room.
	pad := 4*3*d + gemmNR
	stride := (4*k.backHeadScratch.Invoke(n, dh).Int() + 63) &^ 63
	args, qkvOff, probsOff := l.part(4*backHeadWords), l.part(4*(n*3*d+pad)), l.part(4*(heads*n*n+4*n+gemmNR))
	gHeadsOff, gProbsOff, gQKVOff := l.part(4*n*d), l.part(4*heads*n*n), l.part(4*n*3*d)
	scratchOff := l.part(k.threads * stride)
	base := k.scratchAt(l.need)
	k.put(base+qkvOff, qkv[:n*3*d])
	k.put(base+probsOff, probs[:heads*n*n])
	k.put(base+gHeadsOff, gHeads[:n*d])
	gq := 0
	if gQKV != nil {
		gq = base + gQKVOff
	}
	k.putWords(base+args, []int32{backQKV: int32(base + qkvOff), backProbs: int32(base + probsOff),
		backGHeads: int32(base + gHeadsOff), backGProbs: int32(base + gProbsOff), backGQKV: int32(gq),
		backTokens: int32(n), backHeads: int32(heads), backDH: int32(dh), backScale: int32(math.Float32bits(scale)),
		backScratch: int32(base + scratchOff), backStride: int32(stride)})
	k.runJob(opAttentionBackward, base+args, heads, 1)
	k.get(gProbs[:heads*n*n], base+gProbsOff)
	if gQKV != nil {
		k.get(gQKV[:n*3*d], base+gQKVOff)
	}
	return true
}

// The attention backward job's words (gemm.c's U_ enum).
const (
	backQKV = iota
	backProbs
	backGHeads
	backGProbs
	backGQKV
	backTokens
	backHeads
	backDH
	backScale
	backScratch
	backStride
	backHeadWords
)
