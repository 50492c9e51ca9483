#include "textflag.h"

// AVX-512 forms of the functions of exp.go: 16 lanes, and a masked last
// vector instead of a scalar tail (masked-off lanes are neither read nor
// written).

DATA e512<>+0(SB)/4, $0x42b0c0a5  // 88.3763 (hi)
DATA e512<>+4(SB)/4, $0xc2aeac50  // -87.3365 (lo)
DATA e512<>+8(SB)/4, $0x3fb8aa3b  // log2(e)
DATA e512<>+12(SB)/4, $0x3f000000 // 0.5
DATA e512<>+16(SB)/4, $0x3f318000 // ln2 hi 0.693359375
DATA e512<>+20(SB)/4, $0xb95e8083 // ln2 lo -2.12194440e-4
DATA e512<>+24(SB)/4, $0x39506967 // p0
DATA e512<>+28(SB)/4, $0x3ab743ce // p1
DATA e512<>+32(SB)/4, $0x3c088908 // p2
DATA e512<>+36(SB)/4, $0x3d2aa9c1 // p3
DATA e512<>+40(SB)/4, $0x3e2aaaaa // p4
DATA e512<>+44(SB)/4, $0x3f000000 // p5
DATA e512<>+48(SB)/4, $0x3f800000 // 1.0
DATA e512<>+52(SB)/4, $0x7f800000 // +Inf
DATA e512<>+56(SB)/4, $0xff800000 // -Inf
GLOBL e512<>(SB), RODATA|NOPTR, $60

// CONSTS512 loads the constants of EXP16: Z8 hi, Z9 lo, Z10 log2e, Z11 0.5,
// Z12 ln2hi, Z13 ln2lo, Z14 1, Z15 +Inf, Z16…Z21 p0…p5.
#define CONSTS512 \
	VBROADCASTSS e512<>+0(SB), Z8 \
	VBROADCASTSS e512<>+4(SB), Z9 \
	VBROADCASTSS e512<>+8(SB), Z10 \
	VBROADCASTSS e512<>+12(SB), Z11 \
	VBROADCASTSS e512<>+16(SB), Z12 \
	VBROADCASTSS e512<>+20(SB), Z13 \
	VBROADCASTSS e512<>+48(SB), Z14 \
	VBROADCASTSS e512<>+52(SB), Z15 \
	VBROADCASTSS e512<>+24(SB), Z16 \
	VBROADCASTSS e512<>+28(SB), Z17 \
	VBROADCASTSS e512<>+32(SB), Z18 \
	VBROADCASTSS e512<>+36(SB), Z19 \
	VBROADCASTSS e512<>+40(SB), Z20 \
	VBROADCASTSS e512<>+44(SB), Z21

// EXP16 sets Z6 = exp(Z0) lane by lane, the algorithm of exp1 in exp.go:
// 0 below lo, +Inf above hi, NaN for NaN. It uses Z1…Z7 and K3…K5.
#define EXP16 \
	VMINPS       Z8, Z0, Z1 \
	VMAXPS       Z9, Z1, Z1 \
	VMOVAPS      Z11, Z2 \
	VFMADD231PS  Z10, Z1, Z2 \
	VRNDSCALEPS  $9, Z2, Z2 \
	VFNMADD231PS Z12, Z2, Z1 \
	VFNMADD231PS Z13, Z2, Z1 \
	VMOVAPS      Z16, Z3 \
	VFMADD213PS  Z17, Z1, Z3 \
	VFMADD213PS  Z18, Z1, Z3 \
	VFMADD213PS  Z19, Z1, Z3 \
	VFMADD213PS  Z20, Z1, Z3 \
	VFMADD213PS  Z21, Z1, Z3 \
	VMULPS       Z1, Z1, Z5 \
	VADDPS       Z14, Z1, Z6 \
	VFMADD231PS  Z5, Z3, Z6 \
	VSCALEFPS    Z2, Z6, Z6 \
	VCMPPS       $5, Z9, Z0, K3 \
	VMOVAPS.Z    Z6, K3, Z6 \
	VCMPPS       $14, Z8, Z0, K4 \
	VMOVAPS      Z15, K4, Z6 \
	VCMPPS       $3, Z0, Z0, K5 \
	VMOVAPS      Z0, K5, Z6

// TAILMASK sets K2 to the low CX&15 bits and CX to the whole vectors.
#define TAILMASK \
	MOVQ  CX, BX \
	ANDQ  $15, BX \
	MOVQ  $1, AX \
	SHLXQ BX, AX, AX \
	DECQ  AX \
	KMOVW AX, K2 \
	SHRQ  $4, CX

// SUM64 adds the 16 floats of Z6 into the float64 sums Z24, Z25.
#define SUM64 \
	VCVTPS2PD     Y6, Z22 \
	VEXTRACTF64X4 $1, Z6, Y7 \
	VCVTPS2PD     Y7, Z23 \
	VADDPD        Z22, Z24, Z24 \
	VADDPD        Z23, Z25, Z25

// SUMOUT stores Z24 + Z25, summed, at ret.
#define SUMOUT(ret) \
	VADDPD        Z25, Z24, Z0 \
	VEXTRACTF64X4 $1, Z0, Y1 \
	VADDPD        Y1, Y0, Y0 \
	VEXTRACTF128  $1, Y0, X1 \
	VADDPD        X1, X0, X0 \
	VHADDPD       X0, X0, X0 \
	MOVSD         X0, ret

// func expAVX512(dst, src []float32)
TEXT ·expAVX512(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX
	TAILMASK
	CONSTS512
	TESTQ CX, CX
	JZ    etail

eloop:
	VMOVUPS (SI), Z0
	EXP16
	VMOVUPS Z6, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     eloop

etail:
	KORTESTW  K2, K2
	JZ        edone
	VMOVUPS.Z (SI), K2, Z0
	EXP16
	VMOVUPS   Z6, K2, (DI)

edone:
	VZEROUPPER
	RET

// func expSumAVX512(dst, src []float32, m float32) float64
//
// dst[i] = exp(src[i] − m); returns Σ dst[i], each rounded to float32 and
// summed in float64.
TEXT ·expSumAVX512(SB), NOSPLIT, $0-64
	MOVQ         dst_base+0(FP), DI
	MOVQ         src_base+24(FP), SI
	MOVQ         src_len+32(FP), CX
	VBROADCASTSS m+48(FP), Z26
	VPXORQ       Z24, Z24, Z24
	VPXORQ       Z25, Z25, Z25
	TAILMASK
	CONSTS512
	TESTQ        CX, CX
	JZ           xtail

xloop:
	VMOVUPS (SI), Z0
	VSUBPS  Z26, Z0, Z0
	EXP16
	VMOVUPS Z6, (DI)
	SUM64
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     xloop

xtail:
	KORTESTW  K2, K2
	JZ        xdone
	VMOVUPS.Z (SI), K2, Z0
	VSUBPS    Z26, Z0, Z0
	EXP16
	VMOVAPS.Z Z6, K2, Z6
	VMOVUPS   Z6, K2, (DI)
	SUM64

xdone:
	SUMOUT(ret+56(FP))
	VZEROUPPER
	RET

// func sumExpAVX512(x []float32, m float32) float64
//
// Σ exp(x[i] − m), each exponential rounded to float32, summed in float64.
TEXT ·sumExpAVX512(SB), NOSPLIT, $0-40
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS m+24(FP), Z26
	VPXORQ       Z24, Z24, Z24
	VPXORQ       Z25, Z25, Z25
	TAILMASK
	CONSTS512
	TESTQ        CX, CX
	JZ           stail

sloop:
	VMOVUPS (SI), Z0
	VSUBPS  Z26, Z0, Z0
	EXP16
	SUM64
	ADDQ    $64, SI
	DECQ    CX
	JNZ     sloop

stail:
	KORTESTW  K2, K2
	JZ        sdone
	VMOVUPS.Z (SI), K2, Z0
	VSUBPS    Z26, Z0, Z0
	EXP16
	VMOVAPS.Z Z6, K2, Z6
	SUM64

sdone:
	SUMOUT(ret+32(FP))
	VZEROUPPER
	RET

// func maxAVX512(x []float32) (m float32, nan bool)
//
// The maximum of x (−Inf for none) and whether x holds a NaN.
TEXT ·maxAVX512(SB), NOSPLIT, $0-29
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS e512<>+56(SB), Z0
	KXORW        K7, K7, K7
	TAILMASK
	TESTQ        CX, CX
	JZ           mtail

mloop:
	VMOVUPS (SI), Z1
	VMAXPS  Z1, Z0, Z0
	VCMPPS  $3, Z1, Z1, K1
	KORW    K1, K7, K7
	ADDQ    $64, SI
	DECQ    CX
	JNZ     mloop

mtail:
	KORTESTW     K2, K2
	JZ           mdone
	VBROADCASTSS e512<>+56(SB), Z1
	VMOVUPS      (SI), K2, Z1
	VMAXPS       Z1, Z0, Z0
	VCMPPS       $3, Z1, Z1, K1
	KORW         K1, K7, K7

mdone:
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS        Y1, Y0, Y0
	VEXTRACTF128  $1, Y0, X1
	VMAXPS        X1, X0, X0
	VPERMILPS     $0x4E, X0, X1
	VMAXPS        X1, X0, X0
	VPERMILPS     $0xB1, X0, X1
	VMAXPS        X1, X0, X0
	MOVSS         X0, m+24(FP)
	KORTESTW      K7, K7
	SETNE         nan+28(FP)
	VZEROUPPER
	RET

// func scaleAVX512(x []float32, c float32)
//
// x[i] *= c.
TEXT ·scaleAVX512(SB), NOSPLIT, $0-28
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS c+24(FP), Z1
	TAILMASK
	TESTQ        CX, CX
	JZ           ctail

cloop:
	VMULPS  (SI), Z1, Z0
	VMOVUPS Z0, (SI)
	ADDQ    $64, SI
	DECQ    CX
	JNZ     cloop

ctail:
	KORTESTW  K2, K2
	JZ        cdone
	VMOVUPS.Z (SI), K2, Z0
	VMULPS    Z0, Z1, Z0
	VMOVUPS   Z0, K2, (SI)

cdone:
	VZEROUPPER
	RET

// func scaleAddAVX512(x []float32, c float32, acc []float32)
// x[i] *= c, then acc[i] += x[i]; acc is as long as x.
TEXT ·scaleAddAVX512(SB), NOSPLIT, $0-56
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS c+24(FP), Z1
	MOVQ         acc_base+32(FP), DI
	TAILMASK
	TESTQ        CX, CX
	JZ           atail

aloop:
	VMULPS  (SI), Z1, Z0
	VMOVUPS Z0, (SI)
	VADDPS  (DI), Z0, Z2
	VMOVUPS Z2, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     aloop

atail:
	KORTESTW  K2, K2
	JZ        adone
	VMOVUPS.Z (SI), K2, Z0
	VMULPS    Z0, Z1, Z0
	VMOVUPS   Z0, K2, (SI)
	VMOVUPS.Z (DI), K2, Z2
	VADDPS    Z0, Z2, Z2
	VMOVUPS   Z2, K2, (DI)

adone:
	VZEROUPPER
	RET
