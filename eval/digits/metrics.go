package digits

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// LabelAgreement is the fraction of samples whose most probable class is
// the wanted one: a conditional generator's accuracy at drawing the digit
// it was asked for. It is NaN when there are no samples or the lengths
// differ, so that a bar such as >= 0.95 fails rather than passes.
func LabelAgreement(probs [][Classes]float64, want []int) float64 {
	if len(probs) == 0 || len(probs) != len(want) {
		return math.NaN()
	}
	hit := 0
	for i, p := range probs {
		if argmax(p) == want[i] {
			hit++
		}
	}
	return float64(hit) / float64(len(probs))
}

// MaxClassEntropy is log2(10) ≈ 3.32 bits, the class entropy of samples
// spread evenly over the ten digits.
var MaxClassEntropy = math.Log2(Classes)

// ClassEntropy is the entropy in bits of the histogram of the samples'
// most probable classes: log2(10) ≈ 3.32 when every digit is drawn equally
// often, 0 when a generator has collapsed onto one digit. The MNIST test
// set's labels, whose classes are not quite balanced, score 3.319. It is
// NaN without samples.
func ClassEntropy(probs [][Classes]float64) float64 {
	if len(probs) == 0 {
		return math.NaN()
	}
	var hist [Classes]int
	for _, p := range probs {
		hist[argmax(p)]++
	}
	var h float64
	for _, c := range hist {
		if c > 0 {
			q := float64(c) / float64(len(probs))
			h -= q * math.Log2(q)
		}
	}
	return h
}

// FrechetDistance is the Fréchet (2-Wasserstein) distance between the
// Gaussians fitted to two sets of feature vectors (rows), as in FID:
//
//	||mu_a - mu_b||² + Tr(S_a + S_b - 2 (S_a S_b)^½)
//
// with unbiased sample covariances (numpy.cov's, as in pytorch-fid). The
// trace of the matrix square root is computed as Σ √λ over the eigenvalues
// of the symmetric positive semi-definite S_a^½ S_b S_a^½, which has the
// same eigenvalues as S_a S_b; eigenvalues that rounding makes slightly
// negative count as 0, and a result that rounding makes slightly negative
// is reported as 0.
//
// Like FID it is biased upwards for small sets, so compare numbers
// computed with the same set sizes: see the reference values in the
// package documentation.
func FrechetDistance(a, b [][]float64) (float64, error) {
	ma, sa, err := gaussian("first", a)
	if err != nil {
		return 0, err
	}
	mb, sb, err := gaussian("second", b)
	if err != nil {
		return 0, err
	}
	if len(ma) != len(mb) {
		return 0, fmt.Errorf("digits: frechet distance: features of %d and %d dimensions", len(ma), len(mb))
	}
	var d2 float64
	for i := range ma {
		d2 += (ma[i] - mb[i]) * (ma[i] - mb[i])
	}
	rootA, err := sqrtPSD(sa)
	if err != nil {
		return 0, err
	}
	var m mat.Dense
	m.Mul(rootA, sb)
	m.Mul(&m, rootA)
	n := len(ma)
	sym := mat.NewSymDense(n, nil)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			sym.SetSym(i, j, (m.At(i, j)+m.At(j, i))/2)
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(sym, false) {
		return 0, fmt.Errorf("digits: frechet distance: eigendecomposition of the covariance product did not converge")
	}
	var trRoot float64
	for _, l := range eig.Values(nil) {
		trRoot += math.Sqrt(math.Max(l, 0))
	}
	fd := d2 + mat.Trace(sa) + mat.Trace(sb) - 2*trRoot
	if math.IsNaN(fd) || math.IsInf(fd, 0) {
		return 0, fmt.Errorf("digits: frechet distance is %v", fd)
	}
	return math.Max(fd, 0), nil
}

// gaussian returns the mean and unbiased covariance of the rows of x.
func gaussian(which string, x [][]float64) ([]float64, *mat.SymDense, error) {
	if len(x) < 2 {
		return nil, nil, fmt.Errorf("digits: frechet distance: %s set has %d vectors, need at least 2", which, len(x))
	}
	d := len(x[0])
	if d == 0 {
		return nil, nil, fmt.Errorf("digits: frechet distance: %s set has empty vectors", which)
	}
	mean := make([]float64, d)
	for i, row := range x {
		if len(row) != d {
			return nil, nil, fmt.Errorf("digits: frechet distance: %s set: vector %d has %d values, vector 0 has %d", which, i, len(row), d)
		}
		for j, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, nil, fmt.Errorf("digits: frechet distance: %s set: vector %d value %d is %v", which, i, j, v)
			}
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= float64(len(x))
	}
	centred := mat.NewDense(len(x), d, nil)
	for i, row := range x {
		for j, v := range row {
			centred.Set(i, j, v-mean[j])
		}
	}
	cov := mat.NewSymDense(d, nil)
	cov.SymOuterK(1/float64(len(x)-1), centred.T())
	return mean, cov, nil
}

// sqrtPSD is the symmetric square root of a covariance matrix, with
// eigenvalues that rounding made negative clamped to 0.
func sqrtPSD(s *mat.SymDense) (*mat.Dense, error) {
	var eig mat.EigenSym
	if !eig.Factorize(s, true) {
		return nil, fmt.Errorf("digits: frechet distance: eigendecomposition of a covariance did not converge")
	}
	vals := eig.Values(nil)
	var v mat.Dense
	eig.VectorsTo(&v)
	n := len(vals)
	scaled := mat.NewDense(n, n, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			scaled.Set(i, j, v.At(i, j)*math.Sqrt(math.Max(vals[j], 0)))
		}
	}
	var r mat.Dense
	r.Mul(scaled, v.T())
	return &r, nil
}
