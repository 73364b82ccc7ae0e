package gemm

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestPackedAndPanels checks SgemmPackedA and SgemmPanels against Sgemm on
// the same data: shapes around the tile and block edges (m over mcMax, k
// over one k block), both transposes of A, alpha/beta variants, every
// kernel. The packed paths run the same micro-kernel on the same panels,
// so the results must agree to within rounding of the k-block split.
func TestPackedAndPanels(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	shapes := [][3]int{{1, 1, 1}, {12, 32, 7}, {13, 33, 385}, {250, 70, 300}, {5, 2049, 9}, {31, 17, 800}}
	for _, name := range Kernels() {
		withKernel(t, name)
		for _, sh := range shapes {
			m, n, k := sh[0], sh[1], sh[2]
			for _, ta := range []bool{false, true} {
				for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-2, 0.25}} {
					alpha, beta := ab[0], ab[1]
					lda := k
					if ta {
						lda = m
					}
					a := randSlice(r, m*k)
					b := randSlice(r, k*n)
					c0 := randSlice(r, m*n)
					want := append([]float32(nil), c0...)
					SgemmSerial(ta, false, m, n, k, alpha, a, lda, b, n, beta, want, n)

					var pa PackedA
					pa.Pack(ta, m, k, a, lda)
					got := append([]float32(nil), c0...)
					SgemmPackedA(&pa, n, alpha, &DenseB{Data: b, Ld: n}, beta, got, n)
					comparePanels(t, name+"/PackedA", m, n, k, ta, got, want)

					if !ta {
						got = append([]float32(nil), c0...)
						SgemmPanels(m, n, k, alpha, &DenseA{Data: a, Ld: k}, &DenseB{Data: b, Ld: n}, beta, got, n)
						comparePanels(t, name+"/Panels", m, n, k, ta, got, want)
					}
				}
			}
		}
	}
}

func comparePanels(t *testing.T, what string, m, n, k int, ta bool, got, want []float32) {
	t.Helper()
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-5*float64(k+3)*(1+math.Abs(float64(want[i])))) {
			t.Fatalf("%s m=%d n=%d k=%d tA=%t: c[%d] = %v, Sgemm gives %v", what, m, n, k, ta, i, got[i], want[i])
		}
	}
}

// TestPackedAReuse packs a second, smaller matrix into the same PackedA
// and checks the result does not see the first.
func TestPackedAReuse(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var pa PackedA
	big := randSlice(r, 100*500)
	pa.Pack(false, 100, 500, big, 500)
	m, n, k := 7, 9, 11
	a, b := randSlice(r, m*k), randSlice(r, k*n)
	want := make([]float32, m*n)
	SgemmSerial(false, false, m, n, k, 1, a, k, b, n, 0, want, n)
	pa.Pack(false, m, k, a, k)
	got := make([]float32, m*n)
	SgemmPackedA(&pa, n, 1, &DenseB{Data: b, Ld: n}, 0, got, n)
	comparePanels(t, "reuse", m, n, k, false, got, want)
	if pa.Rows() != m || pa.Cols() != k {
		t.Errorf("Rows, Cols = %d, %d, want %d, %d", pa.Rows(), pa.Cols(), m, k)
	}
}

func TestPackedAPanics(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		f          func()
	}{
		{"unpacked", "never packed", func() {
			var pa PackedA
			SgemmPackedA(&pa, 1, 1, &DenseB{Data: []float32{1}, Ld: 1}, 0, []float32{0}, 1)
		}},
		{"short a", "len(a)", func() {
			var pa PackedA
			pa.Pack(false, 2, 3, make([]float32, 5), 3)
		}},
		{"short c", "len(c)", func() {
			var pa PackedA
			pa.Pack(false, 2, 1, make([]float32, 2), 1)
			SgemmPackedA(&pa, 2, 1, &DenseB{Data: make([]float32, 2), Ld: 2}, 0, make([]float32, 3), 2)
		}},
	} {
		func() {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, tc.want) {
					t.Errorf("%s: panic %q, want one mentioning %q", tc.name, msg, tc.want)
				}
			}()
			tc.f()
		}()
	}
}

func TestPackedANoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (sync.Pool drops items)")
	}
	r := rand.New(rand.NewPCG(7, 8))
	m, n, k := 64, 100, 300
	a, b, c := randSlice(r, m*k), randSlice(r, k*n), make([]float32, m*n)
	var pa PackedA
	db := &DenseB{Data: b, Ld: n}
	da := &DenseA{Data: a, Ld: k}
	pa.Pack(false, m, k, a, k)
	if got := testing.AllocsPerRun(10, func() {
		pa.Pack(false, m, k, a, k)
		SgemmPackedA(&pa, n, 1, db, 0, c, n)
		SgemmPanels(m, n, k, 1, da, db, 1, c, n)
	}); got != 0 {
		t.Errorf("%v allocations per call, want 0", got)
	}
}

// TestShortTile runs the row counts for which a kernel's shorter variant
// (the 8x32 AVX-512 tile) is chosen, on every kernel, all transposes, one
// and two goroutines, against the float64 reference, and checks the
// variant is in fact picked where the cost model says so.
func TestShortTile(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, name := range Kernels() {
		withKernel(t, name)
		if k := current.Load(); k.alt != nil {
			if got := k.forRows(32); got != k.alt {
				t.Errorf("%s: forRows(32) has mr %d, want the %d-row variant", name, got.mr, k.alt.mr)
			}
			if got := k.forRows(12); got != k {
				t.Errorf("%s: forRows(12) has mr %d, want %d", name, got.mr, k.mr)
			}
		}
		for _, threads := range []int{1, 2} {
			withThreads(t, threads)
			for _, m := range []int{1, 8, 16, 32, 40, 64, 96} {
				for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
					runCase(t, r, gemmCase{ta: tr[0], tb: tr[1], m: m, n: 70, k: 390, alpha: 1.5, beta: 0.5, pad: 3})
					runCase(t, r, gemmCase{ta: tr[0], tb: tr[1], m: m, n: 33, k: 17, alpha: 1, beta: 0})
				}
			}
		}
	}
}

// TestPackRows checks PackRows and PackStrided (assembly for w = 32 on
// AVX-512) against plain copies, including unsorted and negative offsets,
// a negative stride, and the bounds panics.
func TestPackRows(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	src := randSlice(r, 1000)
	for _, w := range []int{32, 16, 7} {
		offs := []int{5, 900, -3, 40, 40, 0}
		dst := make([]float32, len(offs)*w+1)
		PackRows(dst, src, w, 10, offs)
		for k, o := range offs {
			for i := 0; i < w; i++ {
				if dst[k*w+i] != src[10+o+i] {
					t.Fatalf("PackRows w=%d: row %d col %d = %v, want %v", w, k, i, dst[k*w+i], src[10+o+i])
				}
			}
		}
		if dst[len(offs)*w] != 0 {
			t.Errorf("PackRows w=%d wrote past its rows", w)
		}
		for _, stride := range []int{33, 1, -20} {
			n, base := 9, 400
			dst := make([]float32, n*w)
			PackStrided(dst, src, w, base, stride, n)
			for k := 0; k < n; k++ {
				for i := 0; i < w; i++ {
					if want := src[base+k*stride+i]; dst[k*w+i] != want {
						t.Fatalf("PackStrided w=%d stride=%d: row %d col %d = %v, want %v", w, stride, k, i, dst[k*w+i], want)
					}
				}
			}
		}
	}
	for name, f := range map[string]func(){
		"rows":    func() { PackRows(make([]float32, 64), src, 32, 0, []int{0, 969}) },
		"strided": func() { PackStrided(make([]float32, 64), src, 32, 500, 469, 2) },
		"dst":     func() { PackRows(make([]float32, 63), src, 32, 0, []int{0, 1}) },
	} {
		func() {
			defer func() {
				if msg, _ := recover().(string); !strings.Contains(msg, "gemm: Pack") {
					t.Errorf("%s: panic %q, want a gemm: Pack... bounds panic", name, msg)
				}
			}()
			f()
		}()
	}
}

// TestCopy2D checks Copy2D (masked AVX-512 moves where available) against
// plain loops: widths around the 16-value chunk, gaps, and that nothing
// past the block (or the last row's gap) is written.
func TestCopy2D(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, cols := range []int{1, 7, 15, 16, 17, 28, 32, 33} {
		for _, extra := range []int{0, 1, 2, 16, 19} {
			for _, zero := range []bool{false, true} {
				rows, ldd, lds := 5, cols+extra, cols+3
				src := randSlice(r, rows*lds)
				dst := randSlice(r, rows*ldd+20)
				want := append([]float32(nil), dst...)
				for i := 0; i < rows; i++ {
					copy(want[i*ldd:i*ldd+cols], src[i*lds:])
					if zero && i < rows-1 {
						clear(want[i*ldd+cols : (i+1)*ldd])
					}
				}
				Copy2D(dst, ldd, src, lds, rows, cols, zero)
				for i := range want {
					if dst[i] != want[i] {
						t.Fatalf("cols=%d ldd=%d zeroGap=%t: dst[%d] = %v, want %v", cols, ldd, zero, i, dst[i], want[i])
					}
				}
			}
		}
	}
	defer func() {
		if msg, _ := recover().(string); !strings.Contains(msg, "gemm: Copy2D len(dst)") {
			t.Errorf("short dst: panic %q", msg)
		}
	}()
	Copy2D(make([]float32, 10), 4, make([]float32, 12), 4, 3, 3, false)
}
