//go:build amd64 && !purego

#include "textflag.h"

// func copyRows32(dst, src *float32, offs *int, n, base int)
TEXT ·copyRows32(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ offs+16(FP), BX
	MOVQ n+24(FP), CX
	MOVQ base+32(FP), DX
	LEAQ (SI)(DX*4), SI

rowsloop:
	MOVQ    (BX), AX
	VMOVUPS (SI)(AX*4), Z0
	VMOVUPS 64(SI)(AX*4), Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ    $8, BX
	ADDQ    $128, DI
	DECQ    CX
	JNZ     rowsloop
	VZEROUPPER
	RET

// func copyStrided32(dst, src *float32, n, stride int)
TEXT ·copyStrided32(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ stride+24(FP), DX
	SHLQ $2, DX

stridedloop:
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ    DX, SI
	ADDQ    $128, DI
	DECQ    CX
	JNZ     stridedloop
	VZEROUPPER
	RET

// func copy2D(dst *float32, ldd int, src *float32, lds, rows, cols, gap int)
// Row loop: whole 16-value chunks, then a masked tail (K1); then, when gap
// > 0 and this is not the last row, gap zeros in 16-value masked chunks.
TEXT ·copy2D(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R8
	SHLQ $2, R8
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R9
	SHLQ $2, R9
	MOVQ rows+32(FP), R10
	MOVQ cols+40(FP), R11
	MOVQ gap+48(FP), R12

	// K1: mask of the cols%16 tail; K2: mask of the gap%16 tail.
	MOVQ  R11, CX
	ANDQ  $15, CX
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	MOVQ  R12, CX
	ANDQ  $15, CX
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K2
	VPXORD Z1, Z1, Z1

rowloop:
	MOVQ DI, DX
	MOVQ SI, BX
	MOVQ R11, CX
	SHRQ $4, CX
	JZ   rowtail

chunk:
	VMOVUPS (BX), Z0
	VMOVUPS Z0, (DX)
	ADDQ    $64, BX
	ADDQ    $64, DX
	DECQ    CX
	JNZ     chunk

rowtail:
	VMOVUPS.Z (BX), K1, Z0
	VMOVUPS   Z0, K1, (DX)

	DECQ R10
	JZ   done
	TESTQ R12, R12
	JZ   next

	// Zero the gap, starting right after the row's last value.
	MOVQ R11, AX
	ANDQ $15, AX
	LEAQ (DX)(AX*4), DX
	MOVQ R12, CX
	SHRQ $4, CX
	JZ   gaptail

gapchunk:
	VMOVUPS Z1, (DX)
	ADDQ    $64, DX
	DECQ    CX
	JNZ     gapchunk

gaptail:
	VMOVUPS Z1, K2, (DX)

next:
	ADDQ R8, DI
	ADDQ R9, SI
	JMP  rowloop

done:
	VZEROUPPER
	RET
