//go:build amd64 && !purego

#include "textflag.h"

// One k step of the 12x32 micro-kernel: two zmm loads of the packed B row
// and 24 FMAs whose A operand is broadcast from memory ({1to16}), so no
// register is spent on A. Accumulators: row r in Z(8+2r), Z(9+2r).
#define STEP(b0, b1, a) \
	VMOVUPS          b0(DI), Z0          \
	VMOVUPS          b1(DI), Z1          \
	VFMADD231PS.BCST a+0(SI), Z0, Z8     \
	VFMADD231PS.BCST a+0(SI), Z1, Z9     \
	VFMADD231PS.BCST a+4(SI), Z0, Z10    \
	VFMADD231PS.BCST a+4(SI), Z1, Z11    \
	VFMADD231PS.BCST a+8(SI), Z0, Z12    \
	VFMADD231PS.BCST a+8(SI), Z1, Z13    \
	VFMADD231PS.BCST a+12(SI), Z0, Z14   \
	VFMADD231PS.BCST a+12(SI), Z1, Z15   \
	VFMADD231PS.BCST a+16(SI), Z0, Z16   \
	VFMADD231PS.BCST a+16(SI), Z1, Z17   \
	VFMADD231PS.BCST a+20(SI), Z0, Z18   \
	VFMADD231PS.BCST a+20(SI), Z1, Z19   \
	VFMADD231PS.BCST a+24(SI), Z0, Z20   \
	VFMADD231PS.BCST a+24(SI), Z1, Z21   \
	VFMADD231PS.BCST a+28(SI), Z0, Z22   \
	VFMADD231PS.BCST a+28(SI), Z1, Z23   \
	VFMADD231PS.BCST a+32(SI), Z0, Z24   \
	VFMADD231PS.BCST a+32(SI), Z1, Z25   \
	VFMADD231PS.BCST a+36(SI), Z0, Z26   \
	VFMADD231PS.BCST a+36(SI), Z1, Z27   \
	VFMADD231PS.BCST a+40(SI), Z0, Z28   \
	VFMADD231PS.BCST a+40(SI), Z1, Z29   \
	VFMADD231PS.BCST a+44(SI), Z0, Z30   \
	VFMADD231PS.BCST a+44(SI), Z1, Z31

// C row = alpha*acc + beta*C row (Z2 = alpha, Z3 = beta).
#define STOREROW(lo, hi) \
	VMULPS      Z2, lo, lo           \
	VFMADD231PS (DX), Z3, lo         \
	VMOVUPS     lo, (DX)             \
	VMULPS      Z2, hi, hi           \
	VFMADD231PS 64(DX), Z3, hi       \
	VMOVUPS     hi, 64(DX)           \
	ADDQ        R8, DX

// C row = alpha*acc without reading C (beta == 0).
#define STOREROW0(lo, hi) \
	VMULPS  Z2, lo, lo               \
	VMOVUPS lo, (DX)                 \
	VMULPS  Z2, hi, hi               \
	VMOVUPS hi, 64(DX)               \
	ADDQ    R8, DX

#define ZERO(r) VPXORD r, r, r

#define PREFETCHROW \
	PREFETCHT0 (R9)    \
	PREFETCHT0 64(R9)  \
	PREFETCHT0 127(R9) \
	ADDQ       R8, R9

// func kernel12x32(kc int, a, b, c *float32, ldc int, alpha, beta float32)
TEXT ·kernel12x32(SB), NOSPLIT, $0-48
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	ZERO(Z8)
	ZERO(Z9)
	ZERO(Z10)
	ZERO(Z11)
	ZERO(Z12)
	ZERO(Z13)
	ZERO(Z14)
	ZERO(Z15)
	ZERO(Z16)
	ZERO(Z17)
	ZERO(Z18)
	ZERO(Z19)
	ZERO(Z20)
	ZERO(Z21)
	ZERO(Z22)
	ZERO(Z23)
	ZERO(Z24)
	ZERO(Z25)
	ZERO(Z26)
	ZERO(Z27)
	ZERO(Z28)
	ZERO(Z29)
	ZERO(Z30)
	ZERO(Z31)

	// Warm the C tile (12 rows of 128 bytes, possibly straddling three
	// lines each) while the k loop runs.
	MOVQ DX, R9
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW

	MOVQ CX, BX
	SHRQ $2, BX
	JZ   tail

loop4:
	STEP(0, 64, 0)
	STEP(128, 192, 48)
	STEP(256, 320, 96)
	STEP(384, 448, 144)
	ADDQ $192, SI
	ADDQ $512, DI
	DECQ BX
	JNZ  loop4

tail:
	ANDQ $3, CX
	JZ   store

loop1:
	STEP(0, 64, 0)
	ADDQ $48, SI
	ADDQ $128, DI
	DECQ CX
	JNZ  loop1

store:
	VBROADCASTSS alpha+40(FP), Z2
	MOVL         beta+44(FP), AX
	ANDL         $0x7fffffff, AX
	JZ           storezero
	VBROADCASTSS beta+44(FP), Z3
	STOREROW(Z8, Z9)
	STOREROW(Z10, Z11)
	STOREROW(Z12, Z13)
	STOREROW(Z14, Z15)
	STOREROW(Z16, Z17)
	STOREROW(Z18, Z19)
	STOREROW(Z20, Z21)
	STOREROW(Z22, Z23)
	STOREROW(Z24, Z25)
	STOREROW(Z26, Z27)
	STOREROW(Z28, Z29)
	STOREROW(Z30, Z31)
	VZEROUPPER
	RET

storezero:
	STOREROW0(Z8, Z9)
	STOREROW0(Z10, Z11)
	STOREROW0(Z12, Z13)
	STOREROW0(Z14, Z15)
	STOREROW0(Z16, Z17)
	STOREROW0(Z18, Z19)
	STOREROW0(Z20, Z21)
	STOREROW0(Z22, Z23)
	STOREROW0(Z24, Z25)
	STOREROW0(Z26, Z27)
	STOREROW0(Z28, Z29)
	STOREROW0(Z30, Z31)
	VZEROUPPER
	RET

// One k step of the 8x32 micro-kernel, the 12x32 kernel's shape for row
// counts that are multiples of 8 (32, 64 channels) where 12-row panels
// would leave a partial edge tile. Accumulators: row r in Z(16+2r),
// Z(17+2r).
#define STEP8(b0, b1, a) \
	VMOVUPS          b0(DI), Z0          \
	VMOVUPS          b1(DI), Z1          \
	VFMADD231PS.BCST a+0(SI), Z0, Z16    \
	VFMADD231PS.BCST a+0(SI), Z1, Z17    \
	VFMADD231PS.BCST a+4(SI), Z0, Z18    \
	VFMADD231PS.BCST a+4(SI), Z1, Z19    \
	VFMADD231PS.BCST a+8(SI), Z0, Z20    \
	VFMADD231PS.BCST a+8(SI), Z1, Z21    \
	VFMADD231PS.BCST a+12(SI), Z0, Z22    \
	VFMADD231PS.BCST a+12(SI), Z1, Z23    \
	VFMADD231PS.BCST a+16(SI), Z0, Z24    \
	VFMADD231PS.BCST a+16(SI), Z1, Z25    \
	VFMADD231PS.BCST a+20(SI), Z0, Z26    \
	VFMADD231PS.BCST a+20(SI), Z1, Z27    \
	VFMADD231PS.BCST a+24(SI), Z0, Z28    \
	VFMADD231PS.BCST a+24(SI), Z1, Z29    \
	VFMADD231PS.BCST a+28(SI), Z0, Z30    \
	VFMADD231PS.BCST a+28(SI), Z1, Z31

// func kernel8x32(kc int, a, b, c *float32, ldc int, alpha, beta float32)
TEXT ·kernel8x32(SB), NOSPLIT, $0-48
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	ZERO(Z16)
	ZERO(Z17)
	ZERO(Z18)
	ZERO(Z19)
	ZERO(Z20)
	ZERO(Z21)
	ZERO(Z22)
	ZERO(Z23)
	ZERO(Z24)
	ZERO(Z25)
	ZERO(Z26)
	ZERO(Z27)
	ZERO(Z28)
	ZERO(Z29)
	ZERO(Z30)
	ZERO(Z31)

	MOVQ DX, R9
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW

	MOVQ CX, BX
	SHRQ $2, BX
	JZ   tail8

loop48:
	STEP8(0, 64, 0)
	STEP8(128, 192, 32)
	STEP8(256, 320, 64)
	STEP8(384, 448, 96)
	ADDQ $128, SI
	ADDQ $512, DI
	DECQ BX
	JNZ  loop48

tail8:
	ANDQ $3, CX
	JZ   store8

loop18:
	STEP8(0, 64, 0)
	ADDQ $32, SI
	ADDQ $128, DI
	DECQ CX
	JNZ  loop18

store8:
	VBROADCASTSS alpha+40(FP), Z2
	MOVL         beta+44(FP), AX
	ANDL         $0x7fffffff, AX
	JZ           storezero8
	VBROADCASTSS beta+44(FP), Z3
	STOREROW(Z16, Z17)
	STOREROW(Z18, Z19)
	STOREROW(Z20, Z21)
	STOREROW(Z22, Z23)
	STOREROW(Z24, Z25)
	STOREROW(Z26, Z27)
	STOREROW(Z28, Z29)
	STOREROW(Z30, Z31)
	VZEROUPPER
	RET

storezero8:
	STOREROW0(Z16, Z17)
	STOREROW0(Z18, Z19)
	STOREROW0(Z20, Z21)
	STOREROW0(Z22, Z23)
	STOREROW0(Z24, Z25)
	STOREROW0(Z26, Z27)
	STOREROW0(Z28, Z29)
	STOREROW0(Z30, Z31)
	VZEROUPPER
	RET
