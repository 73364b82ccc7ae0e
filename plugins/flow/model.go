package flow

import (
	"encoding/json"
	"fmt"
	"math"
	"sync"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/nn/ops"
	G "gorgonia.org/gorgonia"
)

// Arch is everything that changes the shape of a weight; it is recorded in
// the weights' metadata ("arch").
//
//	| field  | meaning                                                      | mnist-glow |
//	|--------|--------------------------------------------------------------|------------|
//	| Ch     | image channels                                               | 1          |
//	| Size   | image side; divisible by 2^(Levels-1)                        | 28         |
//	| Levels | scales; every level but the last squeezes first and factors half its channels out after its steps | 3 |
//	| Steps  | flow steps per level (actnorm, invertible 1x1 conv, affine coupling) | 8  |
//	| Hidden | channels of the coupling networks                            | 64         |
//	| Logit  | α of the logit transform in front of the flow (0: none)      | 0          |
//
// With Logit α > 0 the flow sees u = logit(α + (1−2α)(y+½)) of the
// dequantised image y ∈ (−½, ½) rather than y itself (RealNVP, Dinh et
// al. 2017): MNIST's many pixels at the ends of the range become the tails
// of a distribution over the reals, which affine couplings model far more
// easily: the PyTorch twin of mnist-glow (testdata/torch_flow.py train
// --logit 0.05) held out 2.48, 2.23 and 2.12 bits/dim after 400, 600 and
// 800 steps against 3.13, 2.57 and 2.40 without it. log|du/dy| is counted
// in every likelihood.
//
// Level l (Glow, Kingma and Dhariwal 2018): squeeze (2x2 space to depth)
// unless it is the last; Steps × [actnorm (data-dependent init),
// invertible 1x1 convolution W = P·L·(U + diag(sign·exp(logs))), affine
// coupling: (t, r) = NN(x_a), y_b = (x_b + t)·sigmoid(r + 2)]; then,
// unless last, split: half the channels z_l are factored out with a prior
// N(μ, σ) whose (μ, log σ) a zero-initialised 3x3 convolution computes
// from the other half. The last level's output has a learned prior (a
// mean and log σ per value, zero-initialised). NN is conv3x3 (C/2→Hidden),
// ReLU, conv1x1 (Hidden→Hidden), ReLU, conv3x3 (Hidden→C) zero-initialised,
// t its first C/2 channels, r the rest.
type Arch struct {
	Ch     int `json:"ch"`
	Size   int `json:"size"`
	Levels int `json:"levels"`
	Steps  int `json:"steps"`
	Hidden int `json:"hidden"`
	// Logit is omitted from the JSON at 0, so architectures recorded
	// before it existed keep their identity.
	Logit float64 `json:"logit,omitempty"`
}

// Validate checks the sizes.
func (a Arch) Validate() error {
	if a.Ch < 1 || a.Levels < 1 || a.Steps < 1 || a.Hidden < 1 || a.Size < 1 {
		return fmt.Errorf("architecture %s: every size must be positive", a.JSON())
	}
	if a.Logit < 0 || a.Logit >= 0.5 {
		return fmt.Errorf("architecture %s: logit must be in [0, 0.5)", a.JSON())
	}
	if a.Size%(1<<(a.Levels-1)) != 0 {
		return fmt.Errorf("architecture %s: size must divide by 2^(levels-1) = %d", a.JSON(), 1<<(a.Levels-1))
	}
	return nil
}

// JSON is the architecture as recorded in weights metadata.
func (a Arch) JSON() string {
	b, _ := json.Marshal(a)
	return string(b)
}

// Dims is the number of values of an image (and of its latent).
func (a Arch) Dims() int { return a.Ch * a.Size * a.Size }

// flowInput returns what the flow's first layer sees of n dequantised
// images y (−½ < y < ½): y itself, or with Logit α > 0 a copy mapped to
// u = logit(s), s = α + (1−2α)(y+½); and each item's log|du/dy| =
// Σ log(1−2α) − log s − log(1−s), which a likelihood of y adds to the
// flow's (nil without the transform).
func (a Arch) flowInput(y []float32, n int) ([]float32, []float64) {
	if a.Logit == 0 {
		return y, nil
	}
	u := make([]float32, len(y))
	ld := make([]float64, n)
	per := len(y) / n
	k := math.Log(1 - 2*a.Logit)
	for i, v := range y {
		s := a.Logit + (1-2*a.Logit)*(float64(v)+0.5)
		ls, l1s := math.Log(s), math.Log1p(-s)
		u[i] = float32(ls - l1s)
		ld[i/per] += k - ls - l1s
	}
	return u, ld
}

// flowOutput undoes flowInput on the flow's output u, in place: y =
// (sigmoid(u) − α)/(1−2α) − ½.
func (a Arch) flowOutput(u []float32) {
	if a.Logit == 0 {
		return
	}
	for i, v := range u {
		s := 1 / (1 + math.Exp(-float64(v)))
		u[i] = float32((s-a.Logit)/(1-2*a.Logit) - 0.5)
	}
}

// level is the shape a level's steps work on.
type level struct {
	c, s    int  // channels and side during the steps
	squeeze bool // squeezed on entry
	split   bool // half the channels factored out after the steps
}

func (a Arch) levels() []level {
	var out []level
	c, s := a.Ch, a.Size
	for l := 0; l < a.Levels; l++ {
		last := l == a.Levels-1
		lv := level{c: c, s: s, squeeze: !last, split: !last}
		if lv.squeeze {
			lv.c, lv.s = 4*c, s/2
		}
		out = append(out, lv)
		c, s = lv.c, lv.s
		if lv.split {
			c = lv.c - lv.c/2
		}
	}
	return out
}

// latentShapes are the shapes (per item) of the factored-out latents in
// order, the last level's output last: they hold Dims values together.
func (a Arch) latentShapes() [][3]int {
	var out [][3]int
	for _, lv := range a.levels() {
		if lv.split {
			out = append(out, [3]int{lv.c / 2, lv.s, lv.s})
		} else {
			out = append(out, [3]int{lv.c, lv.s, lv.s})
		}
	}
	return out
}

// Model is an architecture with its parameters.
type Model struct {
	Arch   Arch
	Params *layers.Params

	mu  sync.Mutex
	fwd map[int]*fwdProg // compiled forward graphs by batch size
}

func stepName(l, k int) string { return fmt.Sprintf("levels.%d.steps.%d", l, k) }

// NewModel creates a model: actnorm at the identity (set from the first
// batch by InitActNorm), each 1x1 convolution a random rotation in its LU
// form, couplings and priors at zero (so a fresh flow is a composition of
// rotations and its priors standard normal).
func NewModel(a Arch, rng *nn.RNG) (*Model, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	m := &Model{Arch: a, Params: layers.NewParams()}
	s := layers.NewScope(m.Params, rng)
	for l, lv := range a.levels() {
		c := lv.c
		for k := 0; k < a.Steps; k++ {
			name := stepName(l, k)
			m.Params.Add(name+".actnorm.bias", c)
			m.Params.Add(name+".actnorm.logs", c)
			m.Params.AddBuffer(name+".actnorm.initialized", 1)
			lower, upper, logs, perm, sign := randomLU(c, rng)
			copy(m.Params.Add(name+".invconv.lower", c, c).Data(), lower)
			copy(m.Params.Add(name+".invconv.upper", c, c).Data(), upper)
			copy(m.Params.Add(name+".invconv.logs", c).Data(), logs)
			copy(m.Params.AddBuffer(name+".invconv.perm", c, c).Data(), perm)
			copy(m.Params.AddBuffer(name+".invconv.sign", c).Data(), sign)
			ca, cb := c/2, c-c/2
			s.Conv2d(name+".coupling.conv1", ca, a.Hidden, 3, 1, 1)
			s.Conv2d(name+".coupling.conv2", a.Hidden, a.Hidden, 1, 1, 0)
			c3 := s.Conv2d(name+".coupling.conv3", a.Hidden, 2*cb, 3, 1, 1)
			clear(c3.Weight.Data())
			clear(c3.Bias.Data())
		}
		if lv.split {
			p := s.Conv2d(fmt.Sprintf("levels.%d.prior", l), lv.c-lv.c/2, 2*(lv.c/2), 3, 1, 1)
			clear(p.Weight.Data())
			clear(p.Bias.Data())
		} else {
			m.Params.Add("top.mean", lv.c, lv.s, lv.s)
			m.Params.Add("top.logs", lv.c, lv.s, lv.s)
		}
	}
	return m, nil
}

// randomLU draws a random rotation (QR of a Gaussian matrix, by
// Gram-Schmidt) and factors it W = P·L·(U + diag(sign·exp(logs))), as
// Glow initialises its LU-decomposed 1x1 convolutions. Matrices are
// row-major c×c.
func randomLU(c int, rng *nn.RNG) (lower, upper, logs, perm, sign []float32) {
	g := make([]float32, c*c)
	rng.Normal(g, 1)
	q := make([]float64, c*c)
	for i := range g {
		q[i] = float64(g[i])
	}
	// Gram-Schmidt on the columns.
	for j := 0; j < c; j++ {
		for k := 0; k < j; k++ {
			var d float64
			for i := 0; i < c; i++ {
				d += q[i*c+j] * q[i*c+k]
			}
			for i := 0; i < c; i++ {
				q[i*c+j] -= d * q[i*c+k]
			}
		}
		var n float64
		for i := 0; i < c; i++ {
			n += q[i*c+j] * q[i*c+j]
		}
		n = math.Sqrt(n)
		for i := 0; i < c; i++ {
			q[i*c+j] /= n
		}
	}
	p, l, u := luDecompose(q, c)
	lower, upper = make([]float32, c*c), make([]float32, c*c)
	logs, sign, perm = make([]float32, c), make([]float32, c), make([]float32, c*c)
	for i := 0; i < c; i++ {
		for j := 0; j < c; j++ {
			perm[i*c+j] = float32(p[i*c+j])
			if j < i {
				lower[i*c+j] = float32(l[i*c+j])
			}
			if j > i {
				upper[i*c+j] = float32(u[i*c+j])
			}
		}
		d := u[i*c+i]
		sign[i] = float32(math.Copysign(1, d))
		logs[i] = float32(math.Log(math.Abs(d)))
	}
	return
}

// luDecompose factors a (c×c, row-major) as P·L·U with partial pivoting:
// P a permutation, L unit lower triangular, U upper triangular.
func luDecompose(a []float64, c int) (p, l, u []float64) {
	u = append([]float64(nil), a...)
	l = make([]float64, c*c)
	idx := make([]int, c) // row i of P·... is original row idx[i]
	for i := range idx {
		idx[i] = i
	}
	for k := 0; k < c; k++ {
		piv := k
		for i := k + 1; i < c; i++ {
			if math.Abs(u[i*c+k]) > math.Abs(u[piv*c+k]) {
				piv = i
			}
		}
		if piv != k {
			for j := 0; j < c; j++ {
				u[k*c+j], u[piv*c+j] = u[piv*c+j], u[k*c+j]
				l[k*c+j], l[piv*c+j] = l[piv*c+j], l[k*c+j]
			}
			idx[k], idx[piv] = idx[piv], idx[k]
		}
		for i := k + 1; i < c; i++ {
			f := u[i*c+k] / u[k*c+k]
			l[i*c+k] = f
			for j := k; j < c; j++ {
				u[i*c+j] -= f * u[k*c+j]
			}
		}
	}
	for i := 0; i < c; i++ {
		l[i*c+i] = 1
	}
	// Rows were swapped: (Pr·A) = L·U with Pr[i][idx[i]] = 1, so
	// A = Prᵀ·L·U.
	p = make([]float64, c*c)
	for i := 0; i < c; i++ {
		p[idx[i]*c+i] = 1
	}
	return p, l, u
}

func (m *Model) p(name string) *layers.Param { return m.Params.Get(name) }

// invconvWeight is the 1x1 convolution's weight of step name as a graph
// node [c, c, 1, 1] and its log|det| (a scalar node): W = P·L·(U +
// diag(sign·exp(logs))), L = I + strictly lower part of lower, U the
// strictly upper part of upper, so log|det W| = Σ logs.
func (m *Model) invconvWeight(b *layers.Builder, name string, c int) (*G.Node, *G.Node) {
	lower, upper := b.Param(m.p(name+".lower")), b.Param(m.p(name+".upper"))
	logs := b.Param(m.p(name + ".logs"))
	constant := func(suffix string, shape []int, f func(i, j int) float32) *G.Node {
		n := b.Input(name+"."+suffix, shape...)
		if n == nil {
			return nil
		}
		d := layers.Data(n)
		for i := 0; i < shape[0]; i++ {
			for j := 0; j < shape[1]; j++ {
				d[i*shape[1]+j] = f(i, j)
			}
		}
		return n
	}
	one := func(ok bool) float32 {
		if ok {
			return 1
		}
		return 0
	}
	lowMask := constant("lower_mask", []int{c, c}, func(i, j int) float32 { return one(j < i) })
	upMask := constant("upper_mask", []int{c, c}, func(i, j int) float32 { return one(j > i) })
	eye := constant("eye", []int{c, c}, func(i, j int) float32 { return one(i == j) })
	ones := constant("ones", []int{c, 1}, func(int, int) float32 { return 1 })
	sign := constant("sign", []int{1, c}, func(_, j int) float32 { return m.p(name + ".sign").Data()[j] })
	perm := constant("perm", []int{c, c}, func(i, j int) float32 { return m.p(name + ".perm").Data()[i*c+j] })
	mul := func(x, mask *G.Node) *G.Node {
		return b.Apply("invconv mask", func() (*G.Node, error) { return ops.MulMask(x, mask) })
	}
	L := b.Add(mul(lower, lowMask), eye)
	U := mul(upper, upMask)
	// diag(sign·exp(logs)): the row vector copied into every row, masked
	// to the diagonal.
	e := b.Apply("invconv exp", func() (*G.Node, error) { return G.Exp(b.Reshape(logs, 1, c)) })
	D := mul(b.MatMul(ones, mul(e, sign), false, false), eye)
	W := b.MatMul(b.MatMul(perm, L, false, false), b.Add(U, D), false, false)
	ld := b.Apply("invconv logdet", func() (*G.Node, error) { return G.Sum(logs) })
	return b.Reshape(W, c, c, 1, 1), ld
}

// invconvInverse is W⁻¹ of step name, computed in float64 from the
// parameters: [c, c, 1, 1] for the inverse graph.
func (m *Model) invconvInverse(name string, c int) []float32 {
	lower, upper := m.p(name+".lower").Data(), m.p(name+".upper").Data()
	logs, sign, perm := m.p(name+".logs").Data(), m.p(name+".sign").Data(), m.p(name+".perm").Data()
	w := make([]float64, c*c)
	for i := 0; i < c; i++ {
		for j := 0; j < c; j++ {
			// (P·L·U')[i][j] = Σ_k P[i][k] Σ_r L[k][r] U'[r][j]
			var v float64
			for k := 0; k < c; k++ {
				if perm[i*c+k] == 0 {
					continue
				}
				for r := 0; r <= k && r <= j; r++ {
					l := 1.0
					if r < k {
						l = float64(lower[k*c+r])
					}
					u := float64(upper[r*c+j])
					if r == j {
						u = float64(sign[j]) * math.Exp(float64(logs[j]))
					}
					v += float64(perm[i*c+k]) * l * u
				}
			}
			w[i*c+j] = v
		}
	}
	inv := invert(w, c)
	out := make([]float32, c*c)
	for i, v := range inv {
		out[i] = float32(v)
	}
	return out
}

// invert is the inverse of a (c×c, row-major) by Gauss-Jordan elimination
// with partial pivoting.
func invert(a []float64, c int) []float64 {
	m := append([]float64(nil), a...)
	inv := make([]float64, c*c)
	for i := 0; i < c; i++ {
		inv[i*c+i] = 1
	}
	for k := 0; k < c; k++ {
		piv := k
		for i := k + 1; i < c; i++ {
			if math.Abs(m[i*c+k]) > math.Abs(m[piv*c+k]) {
				piv = i
			}
		}
		for j := 0; j < c; j++ {
			m[k*c+j], m[piv*c+j] = m[piv*c+j], m[k*c+j]
			inv[k*c+j], inv[piv*c+j] = inv[piv*c+j], inv[k*c+j]
		}
		d := m[k*c+k]
		for j := 0; j < c; j++ {
			m[k*c+j] /= d
			inv[k*c+j] /= d
		}
		for i := 0; i < c; i++ {
			if i == k {
				continue
			}
			f := m[i*c+k]
			for j := 0; j < c; j++ {
				m[i*c+j] -= f * m[k*c+j]
				inv[i*c+j] -= f * inv[k*c+j]
			}
		}
	}
	return inv
}
