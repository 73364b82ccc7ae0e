package digits

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"gonum.org/v1/gonum/mat"
)

// onehot returns probabilities that put most mass on class c.
func onehot(c int) [Classes]float64 {
	var p [Classes]float64
	for j := range p {
		p[j] = 0.01
	}
	p[c] = 1 - 0.01*(Classes-1)
	return p
}

func TestLabelAgreement(t *testing.T) {
	var probs [][Classes]float64
	var want []int
	for i := 0; i < 20; i++ {
		probs = append(probs, onehot(i%Classes))
		w := i % Classes
		if i%4 == 0 {
			w = (w + 1) % Classes // 5 of 20 asked for another digit
		}
		want = append(want, w)
	}
	if got := LabelAgreement(probs, want); got != 0.75 {
		t.Errorf("agreement %v, want 0.75", got)
	}
	if got := LabelAgreement(probs, want[:3]); !math.IsNaN(got) {
		t.Errorf("mismatched lengths give %v, want NaN", got)
	}
	if got := LabelAgreement(nil, nil); !math.IsNaN(got) {
		t.Errorf("no samples give %v, want NaN", got)
	}
}

func TestClassEntropy(t *testing.T) {
	rep := func(classes []int, times int) [][Classes]float64 {
		var out [][Classes]float64
		for i := 0; i < times; i++ {
			for _, c := range classes {
				out = append(out, onehot(c))
			}
		}
		return out
	}
	cases := []struct {
		name  string
		probs [][Classes]float64
		want  float64
	}{
		{"all ten evenly", rep([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 100), math.Log2(10)},
		{"collapsed on 7", rep([]int{7}, 1000), 0},
		{"two classes", rep([]int{3, 8}, 50), 1},
		{"four classes", rep([]int{0, 1, 2, 9}, 7), 2},
		// 3/4 of one class, 1/4 another: −(¾ log2 ¾ + ¼ log2 ¼).
		{"three to one", rep([]int{5, 5, 5, 6}, 10), 0.8112781244591328},
	}
	for _, c := range cases {
		if got := ClassEntropy(c.probs); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: entropy %v bits, want %v", c.name, got, c.want)
		}
	}
	if math.Abs(MaxClassEntropy-3.321928094887362) > 1e-15 {
		t.Errorf("MaxClassEntropy %v", MaxClassEntropy)
	}
	if got := ClassEntropy(nil); !math.IsNaN(got) {
		t.Errorf("no samples give %v, want NaN", got)
	}
}

// gaussianSet draws n vectors x = A z + m.
func gaussianSet(rng *nn.RNG, n, d int, scale float64, shift float64) [][]float64 {
	mix := make([]float32, d*d)
	rng.Normal(mix, 1)
	z := make([]float32, d)
	out := make([][]float64, n)
	for i := range out {
		rng.Normal(z, 1)
		row := make([]float64, d)
		for r := 0; r < d; r++ {
			for c := 0; c < d; c++ {
				row[r] += scale * float64(mix[r*d+c]) * float64(z[c])
			}
			row[r] += shift
		}
		out[i] = row
	}
	return out
}

func fd(t *testing.T, a, b [][]float64) float64 {
	t.Helper()
	v, err := FrechetDistance(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestFrechetIdenticalAndSymmetric(t *testing.T) {
	rng := nn.NewRNG(1)
	a := gaussianSet(rng, 300, 16, 1, 0)
	b := gaussianSet(rng, 200, 16, 0.5, 0.3)
	if v := fd(t, a, a); v > 1e-9 {
		t.Errorf("FD of a set with itself %v, want ~0", v)
	}
	ab, ba := fd(t, a, b), fd(t, b, a)
	if ab < 1 || math.Abs(ab-ba) > 1e-9*ab {
		t.Errorf("FD(a,b) %v, FD(b,a) %v: want equal and clearly positive", ab, ba)
	}
	// A translation by v moves only the mean: FD = |v|².
	moved := make([][]float64, len(a))
	var v2 float64
	for i, row := range a {
		moved[i] = make([]float64, len(row))
		for j, x := range row {
			moved[i][j] = x + 0.1*float64(j)
		}
	}
	for j := range a[0] {
		v2 += 0.01 * float64(j*j)
	}
	if got := fd(t, a, moved); math.Abs(got-v2) > 1e-9*v2 {
		t.Errorf("translated set: FD %v, want |v|² = %v", got, v2)
	}
}

// TestFrechetDiagonalClosedForm uses sets whose sample covariances are
// exactly diagonal, {mu ± s_i e_i}, where the distance is
// |mu_a − mu_b|² + Σ (σ_a,i − σ_b,i)², then rotates both sets by one
// orthogonal matrix, which must not change it.
func TestFrechetDiagonalClosedForm(t *testing.T) {
	const d = 5
	star := func(mu, s []float64) [][]float64 {
		var out [][]float64
		for i := 0; i < d; i++ {
			for _, sign := range []float64{1, -1} {
				row := append([]float64(nil), mu...)
				row[i] += sign * s[i]
				out = append(out, row)
			}
		}
		return out
	}
	muA, sA := []float64{0, 1, 2, 3, 4}, []float64{1, 2, 3, 0.5, 1}
	muB, sB := []float64{1, 1, 0, 3, 5}, []float64{2, 2, 1, 0.1, 4}
	var want float64
	for i := 0; i < d; i++ {
		// Variance of {±s} among 2d points with mean 0: 2s²/(2d−1).
		va, vb := 2*sA[i]*sA[i]/(2*d-1), 2*sB[i]*sB[i]/(2*d-1)
		want += (muA[i]-muB[i])*(muA[i]-muB[i]) + (math.Sqrt(va)-math.Sqrt(vb))*(math.Sqrt(va)-math.Sqrt(vb))
	}
	a, b := star(muA, sA), star(muB, sB)
	if got := fd(t, a, b); math.Abs(got-want) > 1e-10*want {
		t.Errorf("diagonal covariances: FD %v, closed form %v", got, want)
	}
	rnd := make([]float32, d*d)
	nn.NewRNG(4).Normal(rnd, 1)
	m := mat.NewDense(d, d, nil)
	for i, v := range rnd {
		m.Set(i/d, i%d, float64(v))
	}
	var qr mat.QR
	qr.Factorize(m)
	var q mat.Dense
	qr.QTo(&q)
	rot := func(x [][]float64) [][]float64 {
		out := make([][]float64, len(x))
		for i, row := range x {
			var r mat.VecDense
			r.MulVec(&q, mat.NewVecDense(d, append([]float64(nil), row...)))
			out[i] = r.RawVector().Data
		}
		return out
	}
	if got := fd(t, rot(a), rot(b)); math.Abs(got-want) > 1e-9*want {
		t.Errorf("rotated diagonal covariances: FD %v, closed form %v", got, want)
	}
}

// TestFrechetNumpy compares with numpy on non-commuting covariances
// (testdata/frechet_fixture.py).
func TestFrechetNumpy(t *testing.T) {
	raw, err := os.ReadFile("testdata/frechet.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		A, B [][]float64
		FD   float64
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	if got := fd(t, fx.A, fx.B); math.Abs(got-fx.FD) > 1e-9*fx.FD {
		t.Errorf("FD %v, numpy %v", got, fx.FD)
	}
}

func TestFrechetErrors(t *testing.T) {
	ok := [][]float64{{1, 2}, {3, 4}, {0, 1}}
	for name, c := range map[string][2][][]float64{
		"one vector":       {ok, {{1, 2}}},
		"dimensions":       {ok, {{1, 2, 3}, {4, 5, 6}}},
		"ragged":           {{{1, 2}, {3}}, ok},
		"NaN":              {ok, {{1, 2}, {math.NaN(), 0}}},
		"empty vectors":    {{{}, {}}, ok},
		"no second vector": {ok, nil},
	} {
		if _, err := FrechetDistance(c[0], c[1]); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
