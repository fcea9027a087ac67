#include "textflag.h"

// One row of the C tile: its four vectors at R5 loaded into the row's
// accumulators (then R5 steps to the next row), or the accumulators stored
// at R2 (then R2 steps).
#define LOAD_ROW(v0, v1, v2, v3) VLD1 (R5), [v0.S4, v1.S4, v2.S4, v3.S4]; ADD R4, R5
#define STORE_ROW(v0, v1, v2, v3) VST1 [v0.S4, v1.S4, v2.S4, v3.S4], (R2); ADD R4, R2
// One row of an outer-product step: broadcast the row's A element into t,
// then four FMAs against B's vectors V24..V27.
#define FMA_ROW(t, v0, v1, v2, v3) VLD1R.P 4(R0), [t.S4]; VFMLA V24.S4, t.S4, v0.S4; VFMLA V25.S4, t.S4, v1.S4; VFMLA V26.S4, t.S4, v2.S4; VFMLA V27.S4, t.S4, v3.S4
#define ZERO(v) VEOR v.B16, v.B16, v.B16

// func gemm6x16NEON(a, b, c *float32, kc, ldc int, accumulate bool)
//
// The AVX2 kernel's tile on NEON, so both share one packing: C[0:6, 0:16]
// (=|+=) Σ_p A[p][0:6] ⊗ B[p][0:16] over kc steps of a packed A micro-panel
// (kc×6) and B micro-panel (kc×16). The tile lives in 24 of the 32 q
// registers (V0..V23, four per row); each step loads B's four vectors in
// one instruction and broadcasts six scalars of A with LD1R: 7 loads per
// 24 FMAs, no horizontal sums. ldc is C's row stride in floats. gemmGo is
// its twin.
TEXT ·gemm6x16NEON(SB), NOSPLIT, $0-41
	MOVD a+0(FP), R0
	MOVD b+8(FP), R1
	MOVD c+16(FP), R2
	MOVD kc+24(FP), R3
	MOVD ldc+32(FP), R4
	LSL  $2, R4 // bytes
	MOVBU accumulate+40(FP), R6
	CBZ  R6, zero
	// Accumulate: the tile starts from what C holds.
	MOVD R2, R5
	LOAD_ROW(V0, V1, V2, V3)
	LOAD_ROW(V4, V5, V6, V7)
	LOAD_ROW(V8, V9, V10, V11)
	LOAD_ROW(V12, V13, V14, V15)
	LOAD_ROW(V16, V17, V18, V19)
	LOAD_ROW(V20, V21, V22, V23)
	B    steps

zero:
	ZERO(V0); ZERO(V1); ZERO(V2); ZERO(V3); ZERO(V4); ZERO(V5)
	ZERO(V6); ZERO(V7); ZERO(V8); ZERO(V9); ZERO(V10); ZERO(V11)
	ZERO(V12); ZERO(V13); ZERO(V14); ZERO(V15); ZERO(V16); ZERO(V17)
	ZERO(V18); ZERO(V19); ZERO(V20); ZERO(V21); ZERO(V22); ZERO(V23)

steps:
	CBZ  R3, write

loop:
	VLD1.P 64(R1), [V24.S4, V25.S4, V26.S4, V27.S4]
	FMA_ROW(V28, V0, V1, V2, V3)
	FMA_ROW(V29, V4, V5, V6, V7)
	FMA_ROW(V30, V8, V9, V10, V11)
	FMA_ROW(V31, V12, V13, V14, V15)
	FMA_ROW(V28, V16, V17, V18, V19)
	FMA_ROW(V29, V20, V21, V22, V23)
	SUBS   $1, R3
	BNE    loop

write:
	STORE_ROW(V0, V1, V2, V3)
	STORE_ROW(V4, V5, V6, V7)
	STORE_ROW(V8, V9, V10, V11)
	STORE_ROW(V12, V13, V14, V15)
	STORE_ROW(V16, V17, V18, V19)
	STORE_ROW(V20, V21, V22, V23)
	RET

// func fmaPeakNEON(iters int)
//
// Sixteen independent chains of 4-wide FMAs, iters times: enough chains to
// cover the FMA latency on up to four pipes, so FLOPs/s of this loop is the
// core's peak (iters·16·8 FLOPs). Only the MatMul benchmarks call it.
TEXT ·fmaPeakNEON(SB), NOSPLIT, $0-8
	MOVD iters+0(FP), R0
	ZERO(V0); ZERO(V1); ZERO(V2); ZERO(V3); ZERO(V4); ZERO(V5); ZERO(V6); ZERO(V7)
	ZERO(V8); ZERO(V9); ZERO(V10); ZERO(V11); ZERO(V12); ZERO(V13); ZERO(V14); ZERO(V15)
	ZERO(V30); ZERO(V31)
	CBZ  R0, done

peak:
	VFMLA V30.S4, V31.S4, V0.S4
	VFMLA V30.S4, V31.S4, V1.S4
	VFMLA V30.S4, V31.S4, V2.S4
	VFMLA V30.S4, V31.S4, V3.S4
	VFMLA V30.S4, V31.S4, V4.S4
	VFMLA V30.S4, V31.S4, V5.S4
	VFMLA V30.S4, V31.S4, V6.S4
	VFMLA V30.S4, V31.S4, V7.S4
	VFMLA V30.S4, V31.S4, V8.S4
	VFMLA V30.S4, V31.S4, V9.S4
	VFMLA V30.S4, V31.S4, V10.S4
	VFMLA V30.S4, V31.S4, V11.S4
	VFMLA V30.S4, V31.S4, V12.S4
	VFMLA V30.S4, V31.S4, V13.S4
	VFMLA V30.S4, V31.S4, V14.S4
	VFMLA V30.S4, V31.S4, V15.S4
	SUBS  $1, R0
	BNE   peak

done:
	RET
