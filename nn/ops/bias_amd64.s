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
