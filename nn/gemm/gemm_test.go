package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// withKernel runs the rest of the test with the named micro-kernel; tests
// loop over Kernels() so the assembly and portable paths are all covered.
func withKernel(t testing.TB, name string) {
	prev := current.Load()
	if err := SetKernel(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { current.Store(prev) })
}

func withThreads(t testing.TB, n int) {
	prev := SetMaxThreads(n)
	t.Cleanup(func() { SetMaxThreads(prev) })
}

type gemmCase struct {
	ta, tb      bool
	m, n, k     int
	alpha, beta float32
	pad         int // extra elements per row beyond the minimal leading dimension
}

func (c gemmCase) String() string {
	return fmt.Sprintf("tA=%t,tB=%t,m=%d,n=%d,k=%d,alpha=%g,beta=%g,pad=%d", c.ta, c.tb, c.m, c.n, c.k, c.alpha, c.beta, c.pad)
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = r.Float32()*2 - 1
	}
	return s
}

// runCase runs Sgemm on random data and compares C with a float64
// reference, and checks that no element outside C's m x n view changed.
func runCase(t *testing.T, r *rand.Rand, tc gemmCase) {
	t.Helper()
	ar, ac := tc.m, tc.k
	if tc.ta {
		ar, ac = tc.k, tc.m
	}
	br, bc := tc.k, tc.n
	if tc.tb {
		br, bc = tc.n, tc.k
	}
	lda, ldb, ldc := max(1, ac)+tc.pad, max(1, bc)+tc.pad, max(1, tc.n)+tc.pad
	a := randSlice(r, max(0, (ar-1)*lda+ac))
	b := randSlice(r, max(0, (br-1)*ldb+bc))
	c := randSlice(r, max(0, (tc.m-1)*ldc+tc.n+tc.pad))
	if tc.beta == 0 {
		// beta == 0 must overwrite C, NaNs included.
		for i := 0; i < tc.m; i++ {
			for j := 0; j < tc.n; j++ {
				c[i*ldc+j] = float32(math.NaN())
			}
		}
	}
	orig := append([]float32(nil), c...)

	Sgemm(tc.ta, tc.tb, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)

	at := func(i, p int) float64 {
		if tc.ta {
			return float64(a[p*lda+i])
		}
		return float64(a[i*lda+p])
	}
	bt := func(p, j int) float64 {
		if tc.tb {
			return float64(b[j*ldb+p])
		}
		return float64(b[p*ldb+j])
	}
	const eps = 1.0 / (1 << 23)
	bad := 0
	for i := 0; i < tc.m; i++ {
		for j := 0; j < tc.n; j++ {
			var sum, mag float64
			for p := 0; p < tc.k; p++ {
				x := at(i, p) * bt(p, j)
				sum += x
				mag += math.Abs(x)
			}
			want := float64(tc.alpha) * sum
			bound := math.Abs(float64(tc.alpha)) * mag
			if tc.beta != 0 {
				want += float64(tc.beta) * float64(orig[i*ldc+j])
				bound += math.Abs(float64(tc.beta) * float64(orig[i*ldc+j]))
			}
			// Rounding error of a k-term float32 dot product plus the
			// alpha/beta update grows at most linearly with k.
			tol := 2 * eps * float64(tc.k+3) * bound
			got := float64(c[i*ldc+j])
			if math.IsNaN(got) || math.Abs(got-want) > tol {
				if bad < 5 {
					t.Errorf("%v: C[%d,%d] = %g, want %g (tol %g)", tc, i, j, got, want, tol)
				}
				bad++
			}
		}
	}
	for idx := range c {
		i, j := idx/ldc, idx%ldc
		if i < tc.m && j < tc.n {
			continue
		}
		if c[idx] != orig[idx] && !(math.IsNaN(float64(c[idx])) && math.IsNaN(float64(orig[idx]))) {
			t.Errorf("%v: element %d outside C (row %d, col %d) changed from %g to %g", tc, idx, i, j, orig[idx], c[idx])
			return
		}
	}
	if bad > 0 {
		t.Errorf("%v: %d wrong elements", tc, bad)
	}
}

func TestSgemmShapes(t *testing.T) {
	// Sizes around the tile (6, 16) and block (256, 240, 2048) boundaries,
	// primes, degenerate dimensions.
	shapes := [][3]int{
		{1, 1, 1}, {1, 1, 0}, {0, 5, 3}, {5, 0, 3}, {3, 4, 0},
		{6, 16, 1}, {6, 16, 7}, {5, 15, 9}, {7, 17, 13}, {12, 32, 4},
		{13, 31, 29}, {1, 37, 11}, {41, 1, 19}, {2, 3, 257},
		{23, 47, 513}, {241, 19, 5}, {6, 2051, 3}, {97, 101, 103},
	}
	for _, name := range Kernels() {
		t.Run(name, func(t *testing.T) {
			withKernel(t, name)
			for _, threads := range []int{1, 2, 3} {
				withThreads(t, threads)
				r := rand.New(rand.NewPCG(1, uint64(threads)))
				for _, s := range shapes {
					for tr := 0; tr < 4; tr++ {
						tc := gemmCase{ta: tr&1 != 0, tb: tr&2 != 0, m: s[0], n: s[1], k: s[2], alpha: 1, beta: 0, pad: tr}
						runCase(t, r, tc)
					}
				}
			}
		})
	}
}

func TestSgemmAlphaBeta(t *testing.T) {
	ab := [][2]float32{{1, 0}, {1, 1}, {-0.5, 0.25}, {0, 0}, {0, 1}, {0, -2}, {2, float32(math.Copysign(0, -1))}}
	for _, name := range Kernels() {
		t.Run(name, func(t *testing.T) {
			withKernel(t, name)
			r := rand.New(rand.NewPCG(2, 0))
			for _, v := range ab {
				for tr := 0; tr < 4; tr++ {
					// 300 > kcMax exercises the k-block accumulation with beta.
					for _, s := range [][3]int{{7, 19, 5}, {18, 48, 300}, {1, 1, 0}} {
						runCase(t, r, gemmCase{ta: tr&1 != 0, tb: tr&2 != 0, m: s[0], n: s[1], k: s[2], alpha: v[0], beta: v[1], pad: 3})
					}
				}
			}
		})
	}
}

func TestSgemmRandom(t *testing.T) {
	n := 60
	if testing.Short() {
		n = 15
	}
	for _, name := range Kernels() {
		t.Run(name, func(t *testing.T) {
			withKernel(t, name)
			withThreads(t, 2)
			r := rand.New(rand.NewPCG(3, 0))
			for i := 0; i < n; i++ {
				tc := gemmCase{
					ta: r.IntN(2) == 1, tb: r.IntN(2) == 1,
					m: 1 + r.IntN(130), n: 1 + r.IntN(300), k: r.IntN(600),
					alpha: r.Float32()*4 - 2, beta: []float32{0, 1, 0.5}[r.IntN(3)],
					pad: r.IntN(3),
				}
				runCase(t, r, tc)
			}
		})
	}
}

// TestSgemmParallelLarge goes through the goroutine split with products
// big enough to be parallel and to span several k, m and n blocks.
func TestSgemmParallelLarge(t *testing.T) {
	for _, name := range Kernels() {
		if name == "generic" {
			continue // too slow for this size; covered by the smaller tests
		}
		t.Run(name, func(t *testing.T) {
			withKernel(t, name)
			withThreads(t, 2)
			r := rand.New(rand.NewPCG(4, 0))
			runCase(t, r, gemmCase{m: 250, n: 2100, k: 520, alpha: 1, beta: 0.5, pad: 1})
			runCase(t, r, gemmCase{ta: true, tb: true, m: 500, n: 40, k: 300, alpha: -1, beta: 0})
		})
	}
}

// TestSgemmKernelsAgree compares every kernel with the generic one on the
// same inputs: they differ only in rounding (FMA, summation order).
func TestSgemmKernelsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 0))
	m, n, k := 37, 83, 301
	a, b := randSlice(r, m*k), randSlice(r, k*n)
	want := make([]float32, m*n)
	withKernel(t, "generic")
	Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, want, n)
	for _, name := range Kernels() {
		withKernel(t, name)
		got := make([]float32, m*n)
		Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, got, n)
		var maxDiff float64
		for i := range got {
			maxDiff = max(maxDiff, math.Abs(float64(got[i]-want[i])))
		}
		// Sums of 301 products of values in [-1, 1] (magnitude ~10)
		// agree to a few float32 ulps.
		if maxDiff > 1e-4 {
			t.Errorf("kernel %s differs from generic by %g", name, maxDiff)
		}
	}
}

func TestSetKernel(t *testing.T) {
	withKernel(t, "")
	if got, want := Kernel(), Kernels()[0]; got != want {
		t.Errorf("default kernel %q, want fastest %q", got, want)
	}
	ForceGeneric(true)
	if Kernel() != "generic" {
		t.Errorf("after ForceGeneric(true) kernel is %q", Kernel())
	}
	ForceGeneric(false)
	if got, want := Kernel(), Kernels()[0]; got != want {
		t.Errorf("after ForceGeneric(false) kernel %q, want %q", got, want)
	}
	if err := SetKernel("nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("SetKernel(nope) = %v, want an error naming it", err)
	}
}

func TestSgemmPanics(t *testing.T) {
	a := make([]float32, 12)
	b := make([]float32, 12)
	c := make([]float32, 12)
	cases := []struct {
		name string
		f    func()
		want string
	}{
		{"negative m", func() { Sgemm(false, false, -1, 3, 4, 1, a, 4, b, 3, 0, c, 3) }, "m = -1, want >= 0"},
		{"lda too small", func() { Sgemm(false, false, 3, 3, 4, 1, a, 3, b, 3, 0, c, 3) }, "lda = 3, want >= 4"},
		{"lda transposed", func() { Sgemm(true, false, 3, 3, 4, 1, a, 2, b, 3, 0, c, 3) }, "lda = 2, want >= 3"},
		{"short b", func() { Sgemm(false, false, 3, 4, 4, 1, a, 4, b, 4, 0, c, 4) }, "len(b) = 12, want >= 16"},
		{"short c", func() { Sgemm(false, false, 3, 3, 4, 1, a, 4, b, 3, 0, c[:8], 3) }, "len(c) = 8, want >= 9"},
		{"ldb transposed", func() { Sgemm(false, true, 3, 3, 4, 1, a, 4, b, 3, 0, c, 3) }, "ldb = 3, want >= 4"},
		{"ldc too small", func() { Sgemm(false, false, 3, 3, 4, 1, a, 4, b, 3, 0, c, 2) }, "ldc = 2, want >= 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				if !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, "gemm: ") {
					t.Errorf("panic %q, want it to contain %q", r, tc.want)
				}
			}()
			tc.f()
		})
	}
}

func TestSgemmNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (sync.Pool drops items)")
	}
	r := rand.New(rand.NewPCG(6, 0))
	for _, s := range []struct {
		name    string
		m, n, k int
		threads int
	}{
		{"small serial", 8, 20, 30, 2},
		{"large parallel", 128, 784, 288, 2},
		{"large serial", 128, 784, 288, 1},
	} {
		t.Run(s.name, func(t *testing.T) {
			withThreads(t, s.threads)
			a, b, c := randSlice(r, s.m*s.k), randSlice(r, s.k*s.n), make([]float32, s.m*s.n)
			f := func() { Sgemm(false, true, s.m, s.n, s.k, 1, a, s.k, b, s.k, 0, c, s.n) }
			f() // fill the pools
			if n := testing.AllocsPerRun(20, f); n != 0 {
				t.Errorf("Sgemm %dx%dx%d allocates %v times per call, want 0", s.m, s.n, s.k, n)
			}
		})
	}
}

func TestSplitGrid(t *testing.T) {
	for _, tc := range []struct {
		threads, m, n, k int
		tm, tn           int
	}{
		{2, 32, 50176, 9, 1, 2},   // conv: few rows, many pixels: split columns
		{2, 2048, 32, 64, 2, 1},   // tall: split rows
		{2, 1, 1, 10, 1, 1},       // one tile: nothing to split
		{4, 128, 6272, 288, 1, 4}, // columns dominate
	} {
		tm, tn := splitGrid(tc.threads, tc.m, tc.n, tc.k, 6, 16)
		if tm != tc.tm || tn != tc.tn {
			t.Errorf("splitGrid(%d, %d, %d, %d) = %dx%d, want %dx%d", tc.threads, tc.m, tc.n, tc.k, tm, tn, tc.tm, tc.tn)
		}
	}
}
