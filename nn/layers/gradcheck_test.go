package layers

import (
	"math"
	"testing"
)

// checkGradients compares the gradients prog computed on its last run for
// params (prog's differentiation order) with central finite differences of
// its loss, at about samples entries per parameter, and restores every
// value it perturbs. It returns how many entries it checked.
func checkGradients(t *testing.T, name string, prog *Program, params []*Param, samples int, tol float64) int {
	t.Helper()
	grads := make([][]float32, len(params))
	for i := range grads {
		grads[i] = append([]float32(nil), prog.Grad(i)...)
	}
	loss := func() float64 {
		if err := prog.Run(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return prog.Scalar(0)
	}
	const eps = 1e-2
	checked := 0
	for i, p := range params {
		d := p.Data()
		for j := 0; j < len(d); j += 1 + len(d)/samples {
			old := d[j]
			d[j] = old + eps
			up := loss()
			d[j] = old - eps
			down := loss()
			d[j] = old
			fd := (up - down) / (2 * eps)
			checked++
			if math.Abs(fd-float64(grads[i][j])) > tol*(1+math.Abs(fd)) {
				t.Errorf("%s: %s[%d]: analytic %v, finite difference %v", name, p.Name, j, grads[i][j], fd)
			}
		}
	}
	return checked
}
