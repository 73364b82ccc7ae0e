package ops

import (
	"fmt"
	"github.com/genpipe/genpipe/nn"
	"math"
	"runtime"
	"testing"

	"github.com/genpipe/genpipe/nn/gemm"
)

// convCases exercise the implicit-GEMM paths: odd sizes, strides 1, 2 and
// mixed, padding, 1x1, kernels larger than the image, padding >= kernel
// (the transposed kernel's fallback), k over one gemm k block (In*KH*KW >
// 384), Out over one gemm row block (> 240), one in or out channel, and
// batches that do not split evenly over the workers.
var convCases = []struct{ n, c, h, w, o, kh, kw, sh, sw, ph, pw int }{
	{3, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1},
	{5, 2, 9, 9, 3, 3, 3, 2, 2, 1, 1},
	{3, 1, 28, 28, 32, 4, 4, 2, 2, 1, 1},
	{2, 5, 9, 11, 3, 3, 2, 2, 3, 0, 1},
	{3, 4, 5, 7, 6, 1, 1, 1, 1, 0, 0},
	{1, 2, 4, 4, 2, 5, 5, 1, 1, 2, 2},
	{3, 2, 3, 3, 2, 5, 4, 1, 1, 3, 2},
	{3, 2, 6, 5, 3, 2, 2, 1, 1, 2, 2},   // padding >= kernel
	{3, 50, 5, 6, 7, 3, 3, 1, 1, 1, 1},  // colRows 450: two k blocks
	{3, 3, 4, 5, 250, 3, 3, 1, 1, 1, 1}, // Out 250: two row blocks
	{3, 6, 7, 7, 1, 3, 3, 1, 1, 1, 1},
	{3, 1, 13, 10, 5, 3, 3, 2, 1, 0, 1},
	{7, 3, 14, 14, 9, 3, 3, 2, 2, 1, 1},
	{2, 3, 11, 13, 4, 1, 1, 2, 2, 0, 0},
	{2, 2, 6, 6, 3, 1, 1, 1, 1, 1, 1},
}

// TestConvKernelsImplicit checks all three kernels of every case against
// the float64 definition (forward) and the adjoint identities (transposed
// and weight), for every gemm micro-kernel and 1 to 3 workers.
func TestConvKernelsImplicit(t *testing.T) {
	defer gemm.SetKernel("")
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	rng := nn.NewRNG(7)
	for _, kern := range gemm.Kernels() {
		if err := gemm.SetKernel(kern); err != nil {
			t.Fatal(err)
		}
		for procs := 1; procs <= 3; procs++ {
			runtime.GOMAXPROCS(procs)
			for _, c := range convCases {
				name := fmt.Sprintf("%s/p%d/%+v", kern, procs, c)
				g, err := NewConvGeom(c.n, c.c, c.h, c.w, c.o, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				checkConvGeom(t, name, g, rng)
			}
		}
	}
}

func checkConvGeom(t *testing.T, name string, g ConvGeom, rng *nn.RNG) {
	t.Helper()
	x := make([]float32, g.Batch*g.inSize)
	w := make([]float32, g.Out*g.colRows)
	y := make([]float32, g.Batch*g.outSz)
	rng.Normal(x, 1)
	rng.Normal(w, 1)
	rng.Normal(y, 1)
	// NaN-filled outputs show any element a kernel forgets to write.
	got := nanFilled(len(y))
	g.convForward(x, w, got)
	want := naiveConv(g, x, w)
	for i := range want {
		if !(math.Abs(float64(got[i])-want[i]) <= 1e-4*(1+math.Abs(want[i]))) {
			t.Fatalf("%s: conv[%d] = %v, want %v", name, i, got[i], want[i])
		}
	}
	// With the bias (and ReLU) fused in: the same sums, plus the bias.
	bias := make([]float32, g.Out)
	rng.Normal(bias, 1)
	for _, relu := range []bool{false, true} {
		gb := nanFilled(len(y))
		g.convForwardBias(x, w, bias, relu, gb)
		for i, v := range got {
			v += bias[(i/(g.OH*g.OW))%g.Out]
			if relu && v < 0 {
				v = 0
			}
			if gb[i] != v {
				t.Fatalf("%s: conv+bias (relu %v)[%d] = %v, want %v", name, relu, i, gb[i], v)
			}
		}
	}
	xt := nanFilled(len(x))
	g.convTranspose(y, w, xt)
	wt := nanFilled(len(w))
	g.convWeight(x, y, wt)
	var lhs, scale float64
	for i := range want {
		lhs += want[i] * float64(y[i])
		scale += math.Abs(want[i] * float64(y[i]))
	}
	for what, rhs := range map[string]float64{"convT": dot(x, xt), "convW": dot(w, wt)} {
		if !(math.Abs(lhs-rhs) <= 1e-5*(1+scale)) {
			t.Errorf("%s: <conv(x,w),y> = %v but via %s = %v", name, lhs, what, rhs)
		}
	}
	// The identities hold for any y; a per-element check of the transposed
	// kernel against the naive adjoint catches errors that cancel in a sum.
	wantT := naiveConvT(g, y, w)
	for i := range wantT {
		if !(math.Abs(float64(xt[i])-wantT[i]) <= 1e-4*(1+math.Abs(wantT[i]))) {
			t.Fatalf("%s: convT[%d] = %v, want %v", name, i, xt[i], wantT[i])
		}
	}
	wantW := naiveConvW(g, x, y)
	for i := range wantW {
		if !(math.Abs(float64(wt[i])-wantW[i]) <= 1e-4*(1+math.Abs(wantW[i]))) {
			t.Fatalf("%s: convW[%d] = %v, want %v", name, i, wt[i], wantW[i])
		}
	}
}

func nanFilled(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(math.NaN())
	}
	return s
}

// naiveConvT and naiveConvW are the adjoints of naiveConv in x and w, by
// the same loops with the accumulation moved.
func naiveConvT(g ConvGeom, y, w []float32) []float64 {
	x := make([]float64, g.Batch*g.inSize)
	g.eachTap(func(n, o, oy, ox, c, iy, ix, wi int) {
		x[((n*g.In+c)*g.H+iy)*g.W+ix] += float64(y[((n*g.Out+o)*g.OH+oy)*g.OW+ox]) * float64(w[wi])
	})
	return x
}

func naiveConvW(g ConvGeom, x, y []float32) []float64 {
	dw := make([]float64, g.Out*g.colRows)
	g.eachTap(func(n, o, oy, ox, c, iy, ix, wi int) {
		dw[wi] += float64(y[((n*g.Out+o)*g.OH+oy)*g.OW+ox]) * float64(x[((n*g.In+c)*g.H+iy)*g.W+ix])
	})
	return dw
}

// eachTap calls fn for every (output pixel, input pixel, weight) triple of
// the convolution that does not fall in the padding.
func (g ConvGeom) eachTap(fn func(n, o, oy, ox, c, iy, ix, wi int)) {
	for n := 0; n < g.Batch; n++ {
		for o := 0; o < g.Out; o++ {
			for oy := 0; oy < g.OH; oy++ {
				for ox := 0; ox < g.OW; ox++ {
					for c := 0; c < g.In; c++ {
						for ky := 0; ky < g.KH; ky++ {
							for kx := 0; kx < g.KW; kx++ {
								iy, ix := oy*g.SH-g.PH+ky, ox*g.SW-g.PW+kx
								if iy < 0 || iy >= g.H || ix < 0 || ix >= g.W {
									continue
								}
								fn(n, o, oy, ox, c, iy, ix, ((o*g.In+c)*g.KH+ky)*g.KW+kx)
							}
						}
					}
				}
			}
		}
	}
}

// TestConvKernelsNoAllocs checks that, once warm, the kernels allocate
// nothing on one worker (more workers start goroutines).
func TestConvKernelsNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (sync.Pool drops items)")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, c := range []struct{ n, c, h, w, o, kh, kw, sh, sw, ph, pw int }{
		{4, 8, 14, 14, 16, 3, 3, 1, 1, 1, 1},
		{4, 8, 14, 14, 16, 3, 3, 2, 2, 1, 1},
	} {
		g, err := NewConvGeom(c.n, c.c, c.h, c.w, c.o, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, g.Batch*g.inSize)
		w := make([]float32, g.Out*g.colRows)
		y := make([]float32, g.Batch*g.outSz)
		for name, f := range map[string]func(){
			"forward":    func() { g.convForward(x, w, y) },
			"transposed": func() { g.convTranspose(y, w, x) },
			"weight":     func() { g.convWeight(x, y, w) },
		} {
			if a := testing.AllocsPerRun(20, f); a != 0 {
				t.Errorf("%+v %s: %v allocations per call, want 0", c, name, a)
			}
		}
	}
}
