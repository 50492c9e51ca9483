#include "textflag.h"

DATA expconst<>+0(SB)/4, $0x42b0c0a5  // 88.3763 (hi)
DATA expconst<>+4(SB)/4, $0xc2aeac50  // -87.3365 (lo)
DATA expconst<>+8(SB)/4, $0x3fb8aa3b  // log2(e)
DATA expconst<>+12(SB)/4, $0x3f000000 // 0.5
DATA expconst<>+16(SB)/4, $0x3f318000 // ln2 hi 0.693359375
DATA expconst<>+20(SB)/4, $0xb95e8083 // ln2 lo -2.12194440e-4
DATA expconst<>+24(SB)/4, $0x39506967 // p0
DATA expconst<>+28(SB)/4, $0x3ab743ce // p1
DATA expconst<>+32(SB)/4, $0x3c088908 // p2
DATA expconst<>+36(SB)/4, $0x3d2aa9c1 // p3
DATA expconst<>+40(SB)/4, $0x3e2aaaaa // p4
DATA expconst<>+44(SB)/4, $0x3f000000 // p5
DATA expconst<>+48(SB)/4, $0x3f800000 // 1.0
DATA expconst<>+52(SB)/4, $0x0000007f // 127
DATA expconst<>+56(SB)/4, $0x7f800000 // +Inf
GLOBL expconst<>(SB), RODATA|NOPTR, $60

#define LOADCONSTS \
	VBROADCASTSS expconst<>+0(SB), Y8 \
	VBROADCASTSS expconst<>+4(SB), Y9 \
	VBROADCASTSS expconst<>+8(SB), Y10 \
	VBROADCASTSS expconst<>+12(SB), Y11 \
	VBROADCASTSS expconst<>+48(SB), Y14 \
	VPBROADCASTD expconst<>+52(SB), Y15

// EXP8 sets Y6 = exp(Y0) for 8 lanes (the algorithm of exp1 in exp.go);
// it uses Y1…Y7 and the constants LOADCONSTS puts in Y8…Y11, Y14, Y15.
// Y12 and Y13 are left free.
#define EXP8 \
	VMINPS  Y8, Y0, Y1 \
	VMAXPS  Y9, Y1, Y1 \
	VMOVAPS Y11, Y2 \
	VFMADD231PS Y10, Y1, Y2 \
	VROUNDPS $1, Y2, Y2 \
	VBROADCASTSS expconst<>+16(SB), Y4 \
	VFNMADD231PS Y4, Y2, Y1 \
	VBROADCASTSS expconst<>+20(SB), Y4 \
	VFNMADD231PS Y4, Y2, Y1 \
	VBROADCASTSS expconst<>+24(SB), Y3 \
	VBROADCASTSS expconst<>+28(SB), Y4 \
	VFMADD213PS Y4, Y1, Y3 \
	VBROADCASTSS expconst<>+32(SB), Y4 \
	VFMADD213PS Y4, Y1, Y3 \
	VBROADCASTSS expconst<>+36(SB), Y4 \
	VFMADD213PS Y4, Y1, Y3 \
	VBROADCASTSS expconst<>+40(SB), Y4 \
	VFMADD213PS Y4, Y1, Y3 \
	VBROADCASTSS expconst<>+44(SB), Y4 \
	VFMADD213PS Y4, Y1, Y3 \
	VMULPS  Y1, Y1, Y5 \
	VADDPS  Y14, Y1, Y6 \
	VFMADD231PS Y5, Y3, Y6 \
	VCVTTPS2DQ Y2, Y7 \
	VPADDD  Y15, Y7, Y7 \
	VPSLLD  $23, Y7, Y7 \
	VMULPS  Y7, Y6, Y6 \
	VCMPPS  $1, Y9, Y0, Y1 \
	VANDNPS Y6, Y1, Y6 \
	VCMPPS  $14, Y8, Y0, Y1 \
	VBROADCASTSS expconst<>+56(SB), Y4 \
	VBLENDVPS Y1, Y4, Y6, Y6 \
	VCMPPS  $3, Y0, Y0, Y1 \
	VBLENDVPS Y1, Y0, Y6, Y6

// func expAVX2(dst, src []float32)
TEXT ·expAVX2(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX
	SHRQ $3, CX
	JZ   done
	LOADCONSTS

loop:
	VMOVUPS (SI), Y0
	EXP8
	VMOVUPS Y6, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     loop

done:
	VZEROUPPER
	RET

// func sumExpAVX2(x []float32, m float32) float64
//
// Σ exp(x[i] − m) over len(x) elements, a multiple of 8: each lane's
// exponential is rounded to float32, then summed in float64 (Y12, Y13).
TEXT ·sumExpAVX2(SB), NOSPLIT, $0-40
	MOVQ   x_base+0(FP), SI
	MOVQ   x_len+8(FP), CX
	VXORPD Y12, Y12, Y12
	VXORPD Y13, Y13, Y13
	SHRQ   $3, CX
	JZ     sdone
	LOADCONSTS

sloop:
	VMOVUPS      (SI), Y0
	VBROADCASTSS m+24(FP), Y1
	VSUBPS       Y1, Y0, Y0
	EXP8
	VCVTPS2PD    X6, Y1
	VEXTRACTF128 $1, Y6, X7
	VCVTPS2PD    X7, Y7
	VADDPD       Y1, Y12, Y12
	VADDPD       Y7, Y13, Y13
	ADDQ         $32, SI
	DECQ         CX
	JNZ          sloop

sdone:
	VADDPD       Y13, Y12, Y12
	VEXTRACTF128 $1, Y12, X13
	VADDPD       X13, X12, X12
	VHADDPD      X12, X12, X12
	MOVSD        X12, ret+32(FP)
	VZEROUPPER
	RET

// func maxAVX2(x []float32) (m float32, nan bool)
//
// The maximum of len(x) elements, a multiple of 8 and at least 8, and
// whether any is NaN.
TEXT ·maxAVX2(SB), NOSPLIT, $0-29
	MOVQ    x_base+0(FP), SI
	MOVQ    x_len+8(FP), CX
	SHRQ    $3, CX
	VMOVUPS (SI), Y0
	VCMPPS  $3, Y0, Y0, Y3
	ADDQ    $32, SI
	DECQ    CX
	JZ      mdone

mloop:
	VMOVUPS (SI), Y1
	VMAXPS  Y1, Y0, Y0
	VCMPPS  $3, Y1, Y1, Y2
	VORPS   Y2, Y3, Y3
	ADDQ    $32, SI
	DECQ    CX
	JNZ     mloop

mdone:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4E, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xB1, X0, X1
	VMAXPS       X1, X0, X0
	MOVSS        X0, m+24(FP)
	VPTEST       Y3, Y3
	SETNE        nan+28(FP)
	VZEROUPPER
	RET
