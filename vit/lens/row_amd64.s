//go:build amd64 && !purego

#include "textflag.h"

// The lens's per-row passes over one token's C logits, eight lanes at a
// time (AVX2/FMA). Each takes n, a multiple of 8; the Go loops in row.go do
// the rest and are their twins.

// func finishAVX2(dst, z, s, b *float32, n int, inv, negMeanInv float32)
//
// dst = z·inv + (s·negMeanInv + b): Projector.FinishRow's
// (z − μ·s)/σ + β' in float32 FMAs.
TEXT ·finishAVX2(SB), NOSPLIT, $0-48
	MOVQ         dst+0(FP), DI
	MOVQ         z+8(FP), SI
	MOVQ         s+16(FP), DX
	MOVQ         b+24(FP), BX
	MOVQ         n+32(FP), CX
	VBROADCASTSS inv+40(FP), Y6
	VBROADCASTSS negMeanInv+44(FP), Y7
	SHRQ         $3, CX
	JZ           done

loop:
	VMOVUPS     (DX), Y0
	VFMADD213PS (BX), Y7, Y0 // s·negMeanInv + b
	VMOVUPS     (SI), Y1
	VFMADD213PS Y0, Y6, Y1   // z·inv + that
	VMOVUPS     Y1, (DI)
	ADDQ        $32, DI
	ADDQ        $32, SI
	ADDQ        $32, DX
	ADDQ        $32, BX
	DECQ        CX
	JNZ         loop

done:
	VZEROUPPER
	RET

// func copyMaxAVX2(dst, src *float32, n int, lanes *[8]float32)
//
// dst = src and, per lane, the largest of src (n ≥ 8): lane l holds the
// max of the src[i] with i ≡ l mod 8.
TEXT ·copyMaxAVX2(SB), NOSPLIT, $0-32
	MOVQ    dst+0(FP), DI
	MOVQ    src+8(FP), SI
	MOVQ    n+16(FP), CX
	MOVQ    lanes+24(FP), DX
	SHRQ    $3, CX
	VMOVUPS (SI), Y7

loop:
	VMOVUPS (SI), Y0
	VMAXPS  Y0, Y7, Y7
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     loop

	VMOVUPS Y7, (DX)
	VZEROUPPER
	RET

// func rowSumsAVX2(v, e, p *float32, n int, above, shift float32, lanes *[3][8]float32) int
//
// Over n classes: how many v exceed `above` (the target's rank), and per
// lane Σe, Σe·(v−shift) and Σp·(v−shift) (the entropy's and the KL's sums;
// the caller adds the lanes in float64).
TEXT ·rowSumsAVX2(SB), NOSPLIT, $0-56
	MOVQ         v+0(FP), SI
	MOVQ         e+8(FP), DX
	MOVQ         p+16(FP), BX
	MOVQ         n+24(FP), CX
	VBROADCASTSS above+32(FP), Y6
	VBROADCASTSS shift+36(FP), Y7
	MOVQ         lanes+40(FP), DI
	VXORPS       Y2, Y2, Y2 // Σe
	VXORPS       Y3, Y3, Y3 // Σe·(v−shift)
	VXORPS       Y4, Y4, Y4 // Σp·(v−shift)
	VPXOR        Y5, Y5, Y5 // −count, per lane
	SHRQ         $3, CX
	JZ           done

loop:
	VMOVUPS     (SI), Y0
	VCMPPS      $0x1e, Y6, Y0, Y1 // v > above (ordered)
	VPADDD      Y1, Y5, Y5        // −1 per true lane
	VSUBPS      Y7, Y0, Y0        // v − shift
	VMOVUPS     (DX), Y1
	VADDPS      Y1, Y2, Y2
	VFMADD231PS Y1, Y0, Y3
	VFMADD231PS (BX), Y0, Y4
	ADDQ        $32, SI
	ADDQ        $32, DX
	ADDQ        $32, BX
	DECQ        CX
	JNZ         loop

done:
	VMOVUPS      Y2, (DI)
	VMOVUPS      Y3, 32(DI)
	VMOVUPS      Y4, 64(DI)
	VEXTRACTI128 $1, Y5, X1
	VPADDD       X1, X5, X5
	VPHADDD      X5, X5, X5
	VPHADDD      X5, X5, X5
	VMOVD        X5, AX
	NEGL         AX
	MOVLQSX      AX, AX
	MOVQ         AX, ret+48(FP)
	VZEROUPPER
	RET

// func firstAboveAVX2(v *float32, n int, above float32) int
//
// The index of the first v[i] > above, or n when none is (top-k's scan
// for the next entrant).
TEXT ·firstAboveAVX2(SB), NOSPLIT, $0-32
	MOVQ         v+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS above+16(FP), Y6
	XORQ         AX, AX

loop:
	CMPQ      AX, CX
	JGE       none
	VMOVUPS   (SI)(AX*4), Y0
	VCMPPS    $0x1e, Y6, Y0, Y1
	VMOVMSKPS Y1, DX
	TESTL     DX, DX
	JNZ       found
	ADDQ      $8, AX
	JMP       loop

found:
	BSFL DX, DX
	ADDQ DX, AX
	MOVQ AX, ret+24(FP)
	VZEROUPPER
	RET

none:
	MOVQ CX, ret+24(FP)
	VZEROUPPER
	RET
