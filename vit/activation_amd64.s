#include "textflag.h"

// GELU_Y applies GELU to the eight floats of register x, by the same
// rational erf as Erf32 (Horner with FMAs; DX points at geluTable, each
// constant in eight lanes), with z, z2, p, q as temporaries.
#define GELU_Y(x, z, z2, p, q) \
	VMULPS      384(DX), x, z; \
	VMINPS      416(DX), z, z; \
	VMAXPS      448(DX), z, z; \
	VMULPS      z, z, z2; \
	VMOVUPS     (DX), p; \
	VFMADD213PS 32(DX), z2, p; \
	VFMADD213PS 64(DX), z2, p; \
	VFMADD213PS 96(DX), z2, p; \
	VFMADD213PS 128(DX), z2, p; \
	VFMADD213PS 160(DX), z2, p; \
	VFMADD213PS 192(DX), z2, p; \
	VMOVUPS     224(DX), q; \
	VFMADD213PS 256(DX), z2, q; \
	VFMADD213PS 288(DX), z2, q; \
	VFMADD213PS 320(DX), z2, q; \
	VFMADD213PS 352(DX), z2, q; \
	VMULPS      z, p, p; \
	VDIVPS      q, p, p; \
	VADDPS      512(DX), p, p; \
	VMULPS      480(DX), x, x; \
	VMULPS      p, x, x

// func geluAVX2(x *float32, n int, c *[8]float32)
//
// GELU in place on n floats (n a multiple of 8), eight at a time (GELU_Y).
// The Go loop of GELU is its twin.
TEXT ·geluAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ c+16(FP), DX
	SHRQ $3, CX
	JZ   done

loop:
	VMOVUPS (SI), Y0
	GELU_Y(Y0, Y1, Y2, Y3, Y4)
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	DECQ    CX
	JNZ     loop

done:
	VZEROUPPER
	RET

// func epilogue16AVX2(c *float32, ldc, rows int, bias *float32, gelu bool, t *[8]float32)
//
// The GEMM's epilogue on one finished tile of `rows` rows of 16 floats (row
// stride ldc floats) in one call: add bias[0:16] to each row when bias is
// not nil, then GELU (GELU_Y) when gelu is set. Per row, it replaces two Go
// calls on 16 floats each (Add, then GELU's vector loop). epilogue.apply's
// Go loop is its twin.
TEXT ·epilogue16AVX2(SB), NOSPLIT, $0-48
	MOVQ    c+0(FP), SI
	MOVQ    ldc+8(FP), R8
	SHLQ    $2, R8 // bytes
	MOVQ    rows+16(FP), CX
	MOVQ    bias+24(FP), AX
	MOVBLZX gelu+32(FP), BX
	MOVQ    t+40(FP), DX
	TESTQ   CX, CX
	JZ      edone
	TESTQ   AX, AX
	JZ      erow
	VMOVUPS (AX), Y8
	VMOVUPS 32(AX), Y9

erow:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y5
	TESTQ   AX, AX
	JZ      egelu
	VADDPS  Y8, Y0, Y0
	VADDPS  Y9, Y5, Y5

egelu:
	TESTQ   BX, BX
	JZ      estore
	GELU_Y(Y0, Y1, Y2, Y3, Y4)
	GELU_Y(Y5, Y6, Y7, Y10, Y11)

estore:
	VMOVUPS Y0, (SI)
	VMOVUPS Y5, 32(SI)
	ADDQ    R8, SI
	DECQ    CX
	JNZ     erow

edone:
	VZEROUPPER
	RET

// EXP_Y sets p = e^x for the eight floats of register x (clobbered) by
// Exp32's method (inputs below -87.3 give 2^-126 instead of 0), with n and
// r2 as temporaries; DX points at expTable, each constant in eight lanes.
#define EXP_Y(x, n, p, r2) \
	VMAXPS       (DX), x, x; \
	VMULPS       32(DX), x, n; \
	VROUNDPS     $0, n, n; \
	VFNMADD231PS 64(DX), n, x; \
	VFNMADD231PS 96(DX), n, x; \
	VMOVUPS      128(DX), p; \
	VFMADD213PS  160(DX), x, p; \
	VFMADD213PS  192(DX), x, p; \
	VFMADD213PS  224(DX), x, p; \
	VFMADD213PS  256(DX), x, p; \
	VFMADD213PS  288(DX), x, p; \
	VMULPS       x, x, r2; \
	VFMADD213PS  x, r2, p; \
	VADDPS       320(DX), p, p; \
	VCVTPS2DQ    n, n; \
	VPADDD       352(DX), n, n; \
	VPSLLD       $23, n, n; \
	VMULPS       n, p, p

// HMAX_Y and HSUM_Y reduce the eight lanes of y to their max or sum, in
// every lane, with t as a temporary.
#define HMAX_Y(y, t) VPERM2F128 $1, y, y, t; VMAXPS t, y, y; VPERMILPS $0x4E, y, t; VMAXPS t, y, y; VPERMILPS $0xB1, y, t; VMAXPS t, y, y
#define HSUM_Y(y, t) VPERM2F128 $1, y, y, t; VADDPS t, y, y; VPERMILPS $0x4E, y, t; VADDPS t, y, y; VPERMILPS $0xB1, y, t; VADDPS t, y, y

// func expShiftAVX2(x *float32, n int, shift float32, c *[8]float32) float32
//
// x[i] = e^(x[i]-shift) in place on n floats (n a multiple of 8) and their
// sum: the softmax's exponentials, by Exp32's method (EXP_Y). Exp32 is its
// twin.
TEXT ·expShiftAVX2(SB), NOSPLIT, $0-36
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS shift+16(FP), Y7
	MOVQ         c+24(FP), DX
	VXORPS       Y6, Y6, Y6 // sum
	SHRQ         $3, CX
	JZ           done

loop:
	VMOVUPS (SI), Y0
	VSUBPS  Y7, Y0, Y0
	EXP_Y(Y0, Y1, Y2, Y3)
	VMOVUPS Y2, (SI)
	VADDPS  Y2, Y6, Y6
	ADDQ    $32, SI
	DECQ    CX
	JNZ     loop

done:
	VEXTRACTF128 $1, Y6, X1
	VADDPS       X1, X6, X6
	VHADDPS      X6, X6, X6
	VHADDPS      X6, X6, X6
	VMOVSS       X6, ret+32(FP)
	VZEROUPPER
	RET

// func softmaxAVX2(x *float32, n int, scale float32, c *[8]float32)
//
// The attention's softmax of one row of scores in place, n floats (n a
// multiple of 8, a padded row: the caller sets the pad to -Inf):
// x[i] = e^((x[i]-max)·scale) / Σ, in three passes over the row in L1 (max;
// exponentials by EXP_Y and their sum in float32 lanes; the product with
// 1/Σ). Scaling then Softmax in Go is its twin.
TEXT ·softmaxAVX2(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS scale+16(FP), Y7
	MOVQ         c+24(FP), DX
	SHRQ         $3, CX
	JZ           sdone
	MOVQ         SI, DI
	MOVQ         CX, BX
	VMOVUPS      (SI), Y6

smax:
	VMAXPS (DI), Y6, Y6
	ADDQ   $32, DI
	DECQ   BX
	JNZ    smax
	HMAX_Y(Y6, Y0)
	VXORPS Y5, Y5, Y5 // sum
	MOVQ   SI, DI
	MOVQ   CX, BX

sexp:
	VMOVUPS (DI), Y0
	VSUBPS  Y6, Y0, Y0
	VMULPS  Y7, Y0, Y0
	EXP_Y(Y0, Y1, Y2, Y3)
	VMOVUPS Y2, (DI)
	VADDPS  Y2, Y5, Y5
	ADDQ    $32, DI
	DECQ    BX
	JNZ     sexp
	HSUM_Y(Y5, Y0)
	VMOVUPS 320(DX), Y0 // 1 in every lane
	VDIVPS  Y5, Y0, Y5

snorm:
	VMULPS  (SI), Y5, Y0
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	DECQ    CX
	JNZ     snorm

sdone:
	VZEROUPPER
	RET
