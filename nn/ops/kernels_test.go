package ops

import (
	"github.com/genpipe/genpipe/nn"
	"math"
	"testing"
)

// naiveConv is the textbook definition in float64, the reference for the
// im2col kernels.
func naiveConv(g ConvGeom, x, w []float32) []float64 {
	y := make([]float64, g.Batch*g.Out*g.OH*g.OW)
	for n := 0; n < g.Batch; n++ {
		for o := 0; o < g.Out; o++ {
			for oy := 0; oy < g.OH; oy++ {
				for ox := 0; ox < g.OW; ox++ {
					var acc float64
					for c := 0; c < g.In; c++ {
						for ky := 0; ky < g.KH; ky++ {
							for kx := 0; kx < g.KW; kx++ {
								iy, ix := oy*g.SH-g.PH+ky, ox*g.SW-g.PW+kx
								if iy < 0 || iy >= g.H || ix < 0 || ix >= g.W {
									continue
								}
								acc += float64(x[((n*g.In+c)*g.H+iy)*g.W+ix]) * float64(w[((o*g.In+c)*g.KH+ky)*g.KW+kx])
							}
						}
					}
					y[((n*g.Out+o)*g.OH+oy)*g.OW+ox] = acc
				}
			}
		}
	}
	return y
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

var geoms = []struct{ n, c, h, w, o, kh, kw, sh, sw, ph, pw int }{
	{2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1},
	{3, 1, 28, 28, 32, 4, 4, 2, 2, 1, 1},
	{2, 5, 9, 11, 3, 3, 2, 2, 3, 0, 1},
	{2, 4, 5, 5, 6, 1, 1, 1, 1, 0, 0}, // direct path
	{1, 2, 4, 4, 2, 5, 5, 1, 1, 2, 2}, // kernel larger than image
	{5, 2, 6, 6, 3, 2, 2, 2, 2, 0, 0},
}

// TestConvKernels checks the forward kernel against the definition and the
// transposed and weight kernels through the adjoint identities
// <conv(x,w), y> = <x, convT(y,w)> = <w, convW(x,y)>.
func TestConvKernels(t *testing.T) {
	rng := nn.NewRNG(1)
	for _, c := range geoms {
		g, err := NewConvGeom(c.n, c.c, c.h, c.w, c.o, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, g.Batch*g.inSize)
		w := make([]float32, g.Out*g.colRows)
		y := make([]float32, g.Batch*g.outSz)
		rng.Normal(x, 1)
		rng.Normal(w, 1)
		rng.Normal(y, 1)
		got := make([]float32, len(y))
		g.convForward(x, w, got)
		want := naiveConv(g, x, w)
		for i := range want {
			if math.Abs(float64(got[i])-want[i]) > 1e-4*(1+math.Abs(want[i])) {
				t.Fatalf("%v: conv[%d] = %v, want %v", g, i, got[i], want[i])
			}
		}
		xt := make([]float32, len(x))
		g.convTranspose(y, w, xt)
		wt := make([]float32, len(w))
		g.convWeight(x, y, wt)
		var lhs float64
		for i := range want {
			lhs += want[i] * float64(y[i])
		}
		for name, rhs := range map[string]float64{"convT": dot(x, xt), "convW": dot(w, wt)} {
			if math.Abs(lhs-rhs) > 1e-4*(1+math.Abs(lhs)) {
				t.Errorf("%+v: <conv(x,w),y> = %v but via %s = %v", c, lhs, name, rhs)
			}
		}
	}
}
