#include "textflag.h"

// One row of the C tile: add C's row at R9 to accumulators lo, hi (then
// step R9 to the next row), store them at DX (then step DX), or prefetch
// the row's one or two cache lines at R9.
#define ADD_ROW(lo, hi) VADDPS (R9), lo, lo; VADDPS 32(R9), hi, hi; ADDQ R8, R9
#define ZERO_Y0_TO_Y9 VXORPS Y0, Y0, Y0; VXORPS Y1, Y1, Y1; VXORPS Y2, Y2, Y2; VXORPS Y3, Y3, Y3; VXORPS Y4, Y4, Y4; VXORPS Y5, Y5, Y5; VXORPS Y6, Y6, Y6; VXORPS Y7, Y7, Y7; VXORPS Y8, Y8, Y8; VXORPS Y9, Y9, Y9
#define STORE_ROW(lo, hi) VMOVUPS lo, (DX); VMOVUPS hi, 32(DX); ADDQ R8, DX
#define PREFETCH_ROW PREFETCHT0 (R9); PREFETCHT0 60(R9); ADDQ R8, R9

// One outer-product step, the i-th after (SI) and (DI): two vectors of B,
// six broadcasts of A, twelve FMAs into the tile.
#define STEP(i) \
	VMOVUPS      (i*64)(DI), Y12; \
	VMOVUPS      (i*64+32)(DI), Y13; \
	VBROADCASTSS (i*24)(SI), Y14; \
	VFMADD231PS  Y12, Y14, Y0; \
	VFMADD231PS  Y13, Y14, Y1; \
	VBROADCASTSS (i*24+4)(SI), Y15; \
	VFMADD231PS  Y12, Y15, Y2; \
	VFMADD231PS  Y13, Y15, Y3; \
	VBROADCASTSS (i*24+8)(SI), Y14; \
	VFMADD231PS  Y12, Y14, Y4; \
	VFMADD231PS  Y13, Y14, Y5; \
	VBROADCASTSS (i*24+12)(SI), Y15; \
	VFMADD231PS  Y12, Y15, Y6; \
	VFMADD231PS  Y13, Y15, Y7; \
	VBROADCASTSS (i*24+16)(SI), Y14; \
	VFMADD231PS  Y12, Y14, Y8; \
	VFMADD231PS  Y13, Y14, Y9; \
	VBROADCASTSS (i*24+20)(SI), Y15; \
	VFMADD231PS  Y12, Y15, Y10; \
	VFMADD231PS  Y13, Y15, Y11

// func gemm6x16AVX2(a, b, c *float32, kc, ldc int, accumulate bool)
//
// The outer-product micro-kernel: C[0:6, 0:16] (=|+=) Σ_p A[p][0:6] ⊗ B[p][0:16]
// over kc steps, where a is a packed A micro-panel (kc×6: the six rows'
// p-th elements side by side) and b a packed B micro-panel (kc×16). The tile
// lives in twelve ymm accumulators (Y0..Y11, two per row); each step loads
// two vectors of B and broadcasts six scalars of A: 8 loads per 12 FMAs, no
// horizontal sums. ldc is C's row stride in floats. The C tile's rows are
// prefetched first, so that adding them at the end does not wait on L2
// (row strides of 768 or 3072 floats put every row in the same few L1
// sets); the steps run four to a loop turn. gemmGo is its twin.
TEXT ·gemm6x16AVX2(SB), NOSPLIT, $0-41
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ c+16(FP), DX
	MOVQ kc+24(FP), CX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8 // bytes
	MOVQ DX, R9
	PREFETCH_ROW
	PREFETCH_ROW
	PREFETCH_ROW
	PREFETCH_ROW
	PREFETCH_ROW
	PREFETCH_ROW
	ZERO_Y0_TO_Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	MOVQ   CX, BX
	SHRQ   $2, BX
	JZ     tail

loop4:
	STEP(0)
	STEP(1)
	STEP(2)
	STEP(3)
	ADDQ $96, SI
	ADDQ $256, DI
	DECQ BX
	JNZ  loop4

tail:
	ANDQ $3, CX
	JZ   store

loop1:
	STEP(0)
	ADDQ $24, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  loop1

store:
	MOVBLZX accumulate+40(FP), AX
	TESTQ   AX, AX
	JZ      write
	// Accumulate: add the tile already in C, row by row.
	MOVQ    DX, R9
	ADD_ROW(Y0, Y1)
	ADD_ROW(Y2, Y3)
	ADD_ROW(Y4, Y5)
	ADD_ROW(Y6, Y7)
	ADD_ROW(Y8, Y9)
	ADD_ROW(Y10, Y11)

write:
	STORE_ROW(Y0, Y1)
	STORE_ROW(Y2, Y3)
	STORE_ROW(Y4, Y5)
	STORE_ROW(Y6, Y7)
	STORE_ROW(Y8, Y9)
	STORE_ROW(Y10, Y11)
	VZEROUPPER
	RET

// func prefetchAVX2(p *float32, lines int)
//
// PREFETCHT0 on `lines` cache lines from p: the GEMM brings the next B
// micro-panel into cache a slice at a time while the current one runs.
TEXT ·prefetchAVX2(SB), NOSPLIT, $0-16
	MOVQ  p+0(FP), SI
	MOVQ  lines+8(FP), CX
	TESTQ CX, CX
	JZ    pdone

ploop:
	PREFETCHT0 (SI)
	ADDQ       $64, SI
	DECQ       CX
	JNZ        ploop

pdone:
	RET

// func fmaPeakAVX2(iters int)
//
// Ten independent chains of 8-wide FMAs, iters times: enough chains to cover
// the FMA latency on both pipes, so FLOPs/s of this loop is the core's peak
// (iters·10·16 FLOPs). Only the MatMul benchmarks call it.
TEXT ·fmaPeakAVX2(SB), NOSPLIT, $0-8
	MOVQ iters+0(FP), CX
	ZERO_Y0_TO_Y9
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15

peak:
	VFMADD231PS Y14, Y15, Y0
	VFMADD231PS Y14, Y15, Y1
	VFMADD231PS Y14, Y15, Y2
	VFMADD231PS Y14, Y15, Y3
	VFMADD231PS Y14, Y15, Y4
	VFMADD231PS Y14, Y15, Y5
	VFMADD231PS Y14, Y15, Y6
	VFMADD231PS Y14, Y15, Y7
	VFMADD231PS Y14, Y15, Y8
	VFMADD231PS Y14, Y15, Y9
	DECQ        CX
	JNZ         peak
	VZEROUPPER
	RET
