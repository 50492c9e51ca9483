#include "textflag.h"

// STEP does one k step: the B panel row at DI+boff, the A panel column at
// SI+aoff (6 values), into the twelve accumulators.
#define STEP(boff, aoff) \
	VMOVUPS      boff(DI), Y0 \
	VMOVUPS      boff+32(DI), Y1 \
	VBROADCASTSS aoff(SI), Y2 \
	VBROADCASTSS aoff+4(SI), Y3 \
	VFMADD231PS  Y0, Y2, Y4 \
	VFMADD231PS  Y1, Y2, Y5 \
	VFMADD231PS  Y0, Y3, Y6 \
	VFMADD231PS  Y1, Y3, Y7 \
	VBROADCASTSS aoff+8(SI), Y2 \
	VBROADCASTSS aoff+12(SI), Y3 \
	VFMADD231PS  Y0, Y2, Y8 \
	VFMADD231PS  Y1, Y2, Y9 \
	VFMADD231PS  Y0, Y3, Y10 \
	VFMADD231PS  Y1, Y3, Y11 \
	VBROADCASTSS aoff+16(SI), Y2 \
	VBROADCASTSS aoff+20(SI), Y3 \
	VFMADD231PS  Y0, Y2, Y12 \
	VFMADD231PS  Y1, Y2, Y13 \
	VFMADD231PS  Y0, Y3, Y14 \
	VFMADD231PS  Y1, Y3, Y15

// func kernelAVX2(k int, a, b, c *float32, ldc int)
//
// C[0:6, 0:16] += Σ_p a[6p:6p+6]ᵀ · b[16p:16p+16], with C's rows ldc floats
// apart. Y4…Y15 hold the 6×16 tile (two YMM registers per row), Y0 and Y1 a
// row of the B panel, Y2 and Y3 broadcast elements of the A panel.
TEXT ·kernelAVX2(SB), NOSPLIT, $0-40
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15

	CMPQ CX, $2
	JL   tail

loop2:
	STEP(0, 0)
	STEP(64, 24)
	ADDQ $48, SI
	ADDQ $128, DI
	SUBQ $2, CX
	CMPQ CX, $2
	JGE  loop2

tail:
	TESTQ CX, CX
	JE    store
	STEP(0, 0)

store:
	VADDPS  (DX), Y4, Y4
	VADDPS  32(DX), Y5, Y5
	VMOVUPS Y4, (DX)
	VMOVUPS Y5, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y6, Y6
	VADDPS  32(DX), Y7, Y7
	VMOVUPS Y6, (DX)
	VMOVUPS Y7, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y8, Y8
	VADDPS  32(DX), Y9, Y9
	VMOVUPS Y8, (DX)
	VMOVUPS Y9, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y10, Y10
	VADDPS  32(DX), Y11, Y11
	VMOVUPS Y10, (DX)
	VMOVUPS Y11, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y12, Y12
	VADDPS  32(DX), Y13, Y13
	VMOVUPS Y12, (DX)
	VMOVUPS Y13, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y14, Y14
	VADDPS  32(DX), Y15, Y15
	VMOVUPS Y14, (DX)
	VMOVUPS Y15, 32(DX)
	VZEROUPPER
	RET
