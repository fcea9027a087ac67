#include "textflag.h"

// func geluAVX2(x *float32, n int, c *[8]float32)
//
// GELU in place on n floats (n a multiple of 8), eight at a time, by the
// same rational erf as Erf32 (Horner with FMAs; c holds each constant in
// eight lanes: geluTable). The Go loop of GELU is its twin.
TEXT ·geluAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ c+16(FP), DX
	SHRQ $3, CX
	JZ   done

loop:
	VMOVUPS     (SI), Y0
	VMULPS      384(DX), Y0, Y1 // z = x/√2
	VMINPS      416(DX), Y1, Y1 // clamp to [-4, 4]
	VMAXPS      448(DX), Y1, Y1
	VMULPS      Y1, Y1, Y2      // z²
	VMOVUPS     (DX), Y3        // numerator, Horner in z²
	VFMADD213PS 32(DX), Y2, Y3
	VFMADD213PS 64(DX), Y2, Y3
	VFMADD213PS 96(DX), Y2, Y3
	VFMADD213PS 128(DX), Y2, Y3
	VFMADD213PS 160(DX), Y2, Y3
	VFMADD213PS 192(DX), Y2, Y3
	VMOVUPS     224(DX), Y4     // denominator
	VFMADD213PS 256(DX), Y2, Y4
	VFMADD213PS 288(DX), Y2, Y4
	VFMADD213PS 320(DX), Y2, Y4
	VFMADD213PS 352(DX), Y2, Y4
	VMULPS      Y1, Y3, Y3
	VDIVPS      Y4, Y3, Y3      // erf(z)
	VADDPS      512(DX), Y3, Y3 // 1 + erf
	VMULPS      480(DX), Y0, Y0 // x/2
	VMULPS      Y3, Y0, Y0
	VMOVUPS     Y0, (SI)
	ADDQ        $32, SI
	DECQ        CX
	JNZ         loop

done:
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
