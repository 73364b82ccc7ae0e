package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// benchShapes are the products the nn layers run: convolutions lowered to
// matmul on MNIST-sized images (batch 64), the dense layer, and two squares
// for comparison with published numbers. testdata/bench_torch.py uses the
// same list.
var benchShapes = []struct {
	name    string
	m, n, k int
}{
	{"conv1_img", 32, 784, 9},       // 1->32 ch, 3x3, one 28x28 image
	{"conv1_batch", 32, 50176, 9},   // same, 64 images
	{"conv2_img", 64, 196, 288},     // 32->64 ch, one 14x14 image
	{"conv2_batch", 64, 12544, 288}, // same, 64 images
	{"conv3_batch", 128, 3136, 576}, // 64->128 ch, 7x7, 64 images
	{"conv4_img", 128, 196, 1152},   // 128->128 ch, one 14x14 image
	{"dense_n32", 64, 32, 3136},
	{"dense_n256", 64, 256, 3136},
	{"square512", 512, 512, 512},
	{"square1024", 1024, 1024, 1024},
}

var transNames = []struct {
	name   string
	ta, tb bool
}{{"NN", false, false}, {"NT", false, true}, {"TN", true, false}, {"TT", true, true}}

type sgemmFunc func(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

func gonumSgemm(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	tA, tB := blas.NoTrans, blas.NoTrans
	if ta {
		tA = blas.Trans
	}
	if tb {
		tB = blas.Trans
	}
	gonum.Implementation{}.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// BenchmarkSgemm reports GFLOP/s (2*m*n*k per call) over every shape and
// transpose combination for: this package on all cores with the default
// kernel ("ours") and with each other assembly kernel ("ours_avx2fma"), on
// one goroutine ("ours1t"), and gonum's native Sgemm ("gonum"). The generic
// kernel is left out as too slow; run with GENPIPE_GEMM_KERNEL=generic.
func BenchmarkSgemm(b *testing.B) {
	type impl struct {
		name   string
		kernel string
		f      sgemmFunc
	}
	impls := []impl{{"ours", "", Sgemm}, {"ours1t", "", SgemmSerial}}
	for _, k := range Kernels()[1:] {
		if k != "generic" {
			impls = append(impls, impl{"ours_" + k, k, Sgemm})
		}
	}
	impls = append(impls, impl{"gonum", "", gonumSgemm})
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range benchShapes {
		a, bm, c := randSlice(r, s.m*s.k), randSlice(r, s.k*s.n), make([]float32, s.m*s.n)
		for _, tr := range transNames {
			lda, ldb := s.k, s.n
			if tr.ta {
				lda = s.m
			}
			if tr.tb {
				ldb = s.k
			}
			for _, im := range impls {
				b.Run(fmt.Sprintf("%s_m%dn%dk%d/%s/%s", s.name, s.m, s.n, s.k, tr.name, im.name), func(b *testing.B) {
					if im.kernel != "" {
						withKernel(b, im.kernel)
					}
					for b.Loop() {
						im.f(tr.ta, tr.tb, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
					}
					flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N)
					b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
