//go:build amd64 && !purego

#include "textflag.h"

// func addBiasAVX2(y *float32, n int, b float32, relu bool)
// y[i] += b, then max(y[i], 0) with relu, for i < n; n is a multiple of 8.
TEXT ·addBiasAVX2(SB), NOSPLIT, $0-21
	MOVQ         y+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS b+16(FP), Y1
	VXORPS       Y2, Y2, Y2
	MOVBLZX      relu+20(FP), AX
	SHRQ         $3, CX
	JZ           done
	TESTQ        AX, AX
	JZ           plain

reluloop:
	VADDPS  (DI), Y1, Y0
	VMAXPS  Y2, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	DECQ    CX
	JNZ     reluloop
	JMP     done

plain:
	VADDPS  (DI), Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	DECQ    CX
	JNZ     plain

done:
	VZEROUPPER
	RET

// func reluGradAVX2(dst, y, grad *float32, n int)
// dst[i] = grad[i] where y[i] > 0, else 0, for i < n; n is a multiple of 8.
TEXT ·reluGradAVX2(SB), NOSPLIT, $0-32
	MOVQ   dst+0(FP), DI
	MOVQ   y+8(FP), SI
	MOVQ   grad+16(FP), DX
	MOVQ   n+24(FP), CX
	VXORPS Y2, Y2, Y2
	SHRQ   $3, CX
	JZ     rdone

rloop:
	VMOVUPS (SI), Y0
	VCMPPS  $0x0e, Y2, Y0, Y0 // mask of y greater than 0, GT_OS
	VANDPS  (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     rloop

rdone:
	VZEROUPPER
	RET
