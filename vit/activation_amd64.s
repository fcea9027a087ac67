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

// func expShiftAVX2(x *float32, n int, shift float32, c *[8]float32) float32
//
// x[i] = e^(x[i]-shift) in place on n floats (n a multiple of 8) and their
// sum: the softmax's exponentials, by Exp32's method (inputs below -87.3
// give 2^-126 instead of 0). Exp32 is its twin.
TEXT ·expShiftAVX2(SB), NOSPLIT, $0-36
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS shift+16(FP), Y7
	MOVQ         c+24(FP), DX
	VXORPS       Y6, Y6, Y6 // sum
	SHRQ         $3, CX
	JZ           done

loop:
	VMOVUPS      (SI), Y0
	VSUBPS       Y7, Y0, Y0
	VMAXPS       (DX), Y0, Y0      // clamp below at -87.33654
	VMULPS       32(DX), Y0, Y1    // x·log2e
	VROUNDPS     $0, Y1, Y1        // n, to nearest
	VFNMADD231PS 64(DX), Y1, Y0    // r = x - n·ln2hi
	VFNMADD231PS 96(DX), Y1, Y0    //     - n·ln2lo
	VMOVUPS      128(DX), Y2       // p(r), Horner
	VFMADD213PS  160(DX), Y0, Y2
	VFMADD213PS  192(DX), Y0, Y2
	VFMADD213PS  224(DX), Y0, Y2
	VFMADD213PS  256(DX), Y0, Y2
	VFMADD213PS  288(DX), Y0, Y2
	VMULPS       Y0, Y0, Y3        // r²
	VFMADD213PS  Y0, Y3, Y2        // p·r² + r
	VADDPS       320(DX), Y2, Y2   // + 1
	VCVTPS2DQ    Y1, Y1            // 2^n: n+127 in the exponent bits
	VPADDD       352(DX), Y1, Y1
	VPSLLD       $23, Y1, Y1
	VMULPS       Y1, Y2, Y2
	VMOVUPS      Y2, (SI)
	VADDPS       Y2, Y6, Y6
	ADDQ         $32, SI
	DECQ         CX
	JNZ          loop

done:
	VEXTRACTF128 $1, Y6, X1
	VADDPS       X1, X6, X6
	VHADDPS      X6, X6, X6
	VHADDPS      X6, X6, X6
	VMOVSS       X6, ret+32(FP)
	VZEROUPPER
	RET
