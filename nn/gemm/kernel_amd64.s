//go:build amd64 && !purego

#include "textflag.h"

// One k step of the 6x16 micro-kernel: two ymm loads of the packed B row,
// six broadcasts of the packed A column, twelve FMAs into Y4..Y15.
#define STEP(boff, boff2, a0, a1, a2, a3, a4, a5) \
	VMOVUPS      boff(DI), Y0        \
	VMOVUPS      boff2(DI), Y1       \
	VBROADCASTSS a0(SI), Y2          \
	VFMADD231PS  Y0, Y2, Y4          \
	VFMADD231PS  Y1, Y2, Y5          \
	VBROADCASTSS a1(SI), Y3          \
	VFMADD231PS  Y0, Y3, Y6          \
	VFMADD231PS  Y1, Y3, Y7          \
	VBROADCASTSS a2(SI), Y2          \
	VFMADD231PS  Y0, Y2, Y8          \
	VFMADD231PS  Y1, Y2, Y9          \
	VBROADCASTSS a3(SI), Y3          \
	VFMADD231PS  Y0, Y3, Y10         \
	VFMADD231PS  Y1, Y3, Y11         \
	VBROADCASTSS a4(SI), Y2          \
	VFMADD231PS  Y0, Y2, Y12         \
	VFMADD231PS  Y1, Y2, Y13         \
	VBROADCASTSS a5(SI), Y3          \
	VFMADD231PS  Y0, Y3, Y14         \
	VFMADD231PS  Y1, Y3, Y15

// Stores one row of the tile: C = alpha*acc + beta*C (Y0 = alpha, Y1 = beta).
#define STOREROW(lo, hi) \
	VMULPS      Y0, lo, lo           \
	VFMADD231PS (DX), Y1, lo         \
	VMOVUPS     lo, (DX)             \
	VMULPS      Y0, hi, hi           \
	VFMADD231PS 32(DX), Y1, hi       \
	VMOVUPS     hi, 32(DX)           \
	ADDQ        R8, DX

// Stores one row of the tile when beta == 0: C is never read, so NaNs in C
// do not leak into the result.
#define STOREROW0(lo, hi) \
	VMULPS  Y0, lo, lo               \
	VMOVUPS lo, (DX)                 \
	VMULPS  Y0, hi, hi               \
	VMOVUPS hi, 32(DX)               \
	ADDQ    R8, DX

// func kernel6x16(kc int, a, b, c *float32, ldc int, alpha, beta float32)
TEXT ·kernel6x16(SB), NOSPLIT, $0-48
	MOVQ kc+0(FP), CX
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

	// Warm the C tile while the k loop runs; a 64-byte row may straddle
	// two cache lines, hence two prefetches per row.
	MOVQ       DX, R9
	PREFETCHT0 (R9)
	PREFETCHT0 63(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 63(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 63(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 63(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 63(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 63(R9)

	MOVQ CX, BX
	SHRQ $2, BX
	JZ   tail

loop4:
	STEP(0, 32, 0, 4, 8, 12, 16, 20)
	STEP(64, 96, 24, 28, 32, 36, 40, 44)
	STEP(128, 160, 48, 52, 56, 60, 64, 68)
	STEP(192, 224, 72, 76, 80, 84, 88, 92)
	ADDQ $96, SI
	ADDQ $256, DI
	DECQ BX
	JNZ  loop4

tail:
	ANDQ $3, CX
	JZ   store

loop1:
	STEP(0, 32, 0, 4, 8, 12, 16, 20)
	ADDQ $24, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  loop1

store:
	VBROADCASTSS alpha+40(FP), Y0
	MOVL         beta+44(FP), AX
	ANDL         $0x7fffffff, AX
	JZ           storezero
	VBROADCASTSS beta+44(FP), Y1
	STOREROW(Y4, Y5)
	STOREROW(Y6, Y7)
	STOREROW(Y8, Y9)
	STOREROW(Y10, Y11)
	STOREROW(Y12, Y13)
	STOREROW(Y14, Y15)
	VZEROUPPER
	RET

storezero:
	STOREROW0(Y4, Y5)
	STOREROW0(Y6, Y7)
	STOREROW0(Y8, Y9)
	STOREROW0(Y10, Y11)
	STOREROW0(Y12, Y13)
	STOREROW0(Y14, Y15)
	VZEROUPPER
	RET
