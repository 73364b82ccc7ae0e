//go:build amd64 && !purego

#include "textflag.h"

// Cephes expf coefficients and clamps, as in expf in elementwise.go.
DATA sigC<>+0(SB)/4, $0x39506967  // p0
DATA sigC<>+4(SB)/4, $0x3ab743ce  // p1
DATA sigC<>+8(SB)/4, $0x3c088908  // p2
DATA sigC<>+12(SB)/4, $0x3d2aa9c1 // p3
DATA sigC<>+16(SB)/4, $0x3e2aaaaa // p4
DATA sigC<>+20(SB)/4, $0x3f000000 // p5
DATA sigC<>+24(SB)/4, $0x42b0999a // 88.3
DATA sigC<>+28(SB)/4, $0xc2ae999a // -87.3
DATA sigC<>+32(SB)/4, $0x3fb8aa3b // log2(e)
DATA sigC<>+36(SB)/4, $0x3f318000 // ln2 high part
DATA sigC<>+40(SB)/4, $0xb95e8083 // ln2 low part
DATA sigC<>+44(SB)/4, $0x3f800000 // 1
DATA sigC<>+48(SB)/4, $0x0000007f // exponent bias
DATA sigC<>+52(SB)/4, $0x80000000 // sign bit
GLOBL sigC<>(SB), RODATA|NOPTR, $56

// func sigmoidAVX2(dst, src *float32, n int)
// dst[i] = 1/(1+exp(-src[i])) for i < n; n is a multiple of 8.
TEXT ·sigmoidAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS sigC<>+52(SB), Y15 // sign
	VBROADCASTSS sigC<>+24(SB), Y14 // hi
	VBROADCASTSS sigC<>+28(SB), Y13 // lo
	VBROADCASTSS sigC<>+32(SB), Y12 // log2e
	VBROADCASTSS sigC<>+36(SB), Y11 // c1
	VBROADCASTSS sigC<>+40(SB), Y10 // c2
	VBROADCASTSS sigC<>+44(SB), Y9  // 1
	VPBROADCASTD sigC<>+48(SB), Y8  // 127
	SHRQ $3, CX
	JZ   done

loop:
	VMOVUPS (SI), Y0
	VXORPS  Y15, Y0, Y0   // x = -src
	VMINPS  Y14, Y0, Y0
	VMAXPS  Y13, Y0, Y0
	VMULPS  Y12, Y0, Y1
	VROUNDPS $0, Y1, Y1   // n = round(x·log2 e)
	VFNMADD231PS Y11, Y1, Y0 // x -= n·c1
	VFNMADD231PS Y10, Y1, Y0 // x -= n·c2
	VMULPS  Y0, Y0, Y2    // z = x²
	VBROADCASTSS sigC<>+0(SB), Y3
	VBROADCASTSS sigC<>+4(SB), Y4
	VFMADD213PS Y4, Y0, Y3 // y = p0·x + p1
	VBROADCASTSS sigC<>+8(SB), Y4
	VFMADD213PS Y4, Y0, Y3
	VBROADCASTSS sigC<>+12(SB), Y4
	VFMADD213PS Y4, Y0, Y3
	VBROADCASTSS sigC<>+16(SB), Y4
	VFMADD213PS Y4, Y0, Y3
	VBROADCASTSS sigC<>+20(SB), Y4
	VFMADD213PS Y4, Y0, Y3
	VFMADD213PS Y0, Y2, Y3 // y = y·z + x
	VADDPS  Y9, Y3, Y3     // y += 1
	VCVTPS2DQ Y1, Y1
	VPADDD  Y8, Y1, Y1
	VPSLLD  $23, Y1, Y1    // 2^n
	VMULPS  Y1, Y3, Y3     // e^x
	VADDPS  Y9, Y3, Y3
	VDIVPS  Y3, Y9, Y3     // 1/(1+e^-src)
	VMOVUPS Y3, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  loop

done:
	VZEROUPPER
	RET
