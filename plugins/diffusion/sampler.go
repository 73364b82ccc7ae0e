package diffusion

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
)

// net is a compiled inference graph of the denoiser for batches of n.
type net struct {
	m    *Model
	n    int
	in   Inputs
	prog *layers.Program
	ts   []float64
}

func (m *Model) buildNet(n int) (*net, error) {
	b := layers.NewBuilder()
	in := m.NewInputs(b, n)
	out := m.Forward(b, in)
	prog, err := layers.Compile(b, nil, nil, out)
	if err != nil {
		return nil, err
	}
	return &net{m: m, n: n, in: in, prog: prog, ts: make([]float64, n)}, nil
}

// eps predicts the noise of x (n items) at steps t with labels (-1: no
// label), writing it to dst.
func (d *net) eps(dst, x []float32, t []int, labels []int) error {
	copy(layers.Data(d.in.X), x)
	for i, v := range t {
		d.ts[i] = float64(v)
	}
	sinusoidal(layers.Data(d.in.Feats), d.ts, d.m.Arch.features())
	if d.in.Labels != nil {
		oneHot(layers.Data(d.in.Labels), labels, d.m.Arch.Classes)
	}
	if err := d.prog.Run(); err != nil {
		return err
	}
	copy(dst, d.prog.Output(0))
	return nil
}

// oneHot writes rows of classes+1 columns: the label's, or the last one
// ("no label") for a negative label.
func oneHot(dst []float32, labels []int, classes int) {
	clear(dst)
	w := classes + 1
	for i, l := range labels {
		if l < 0 || l >= classes {
			l = classes
		}
		dst[i*w+l] = 1
	}
}

// Sampler names a reverse process.
type Sampler string

// The samplers.
const (
	// DDPM is ancestral sampling (Ho et al. 2020): DDIM with eta 1, which
	// over all T steps is exactly DDPM's posterior; over fewer it is the
	// respaced DDPM of Nichol and Dhariwal.
	DDPM Sampler = "ddpm"
	// DDIM is Song et al. 2021: deterministic for eta 0.
	DDIM Sampler = "ddim"
	// DPMSolver is DPM-Solver++(2M) (Lu et al. 2022), a second-order
	// multistep solver of the probability-flow ODE in data prediction.
	DPMSolver Sampler = "dpm-solver"
)

// Sampling is one reverse process's settings.
type Sampling struct {
	Sampler Sampler
	// Steps is the number of network evaluations (per guidance pass).
	Steps int
	// Spacing spreads the steps over the schedule (Auto: the sampler's).
	Spacing Spacing
	// Eta is DDIM's noise scale (0: deterministic); DDPM uses 1.
	Eta float64
	// Guidance is the classifier-free guidance scale g:
	// ε = ε_u + g·(ε_c − ε_u); 1 is the conditional model alone, 0 the
	// unconditional one. Items without a label are unconditional.
	Guidance float64
	// Temperature scales the starting noise and the noise added on the
	// way (1: the model's distribution).
	Temperature float64
	// Clip, when > 0, clamps each prediction of the clean image to
	// [-Clip, Clip]: 1 for pixels in [-1, 1]; for latents (unbounded, of
	// unit variance after the model's scaling) a bound well outside the
	// data, 5, which only matters in the first steps: from step T-1,
	// where √ᾱ is 5e-5, an error δ in the predicted noise puts 2e4·δ into
	// the predicted clean value, and DDIM's next step carries ~1000·δ of
	// it into x. Without a bound, latent samples diverged (deviation ~800
	// where the data's is 1).
	// models; latents are unbounded).
	Clip float64
	// From is the step the process starts at (T-1 for generation, lower
	// for denoising and image-to-image).
	From int
	// Frames, when > 0, records the state after evenly spaced steps (and
	// the result last): frames[f] holds every item's x at frame f.
	Frames int
	// Keep, when set, is called after every step with the current x and
	// the step it has reached (-1 at the end), for inpainting to restore
	// the known pixels; it may change x.
	Keep func(x []float32, t int)
}

// epsFunc predicts the noise of the items of x (labels: one per item,
// -1 for none) at step t under guidance g, writing it to dst.
type epsFunc func(dst, x []float32, t int, labels []int, g float64) error

// sampler runs reverse processes on a model's compiled graphs.
type sampler struct {
	m     *Model
	per   int // values per item
	sched Schedule
	nets  map[int]*net
	// eps is the noise prediction: the model's (guidedEps), or in tests
	// the exact one of a known data distribution.
	eps epsFunc
}

func newSampler(m *Model) *sampler {
	s := &sampler{m: m, per: m.Arch.per(), sched: Cosine(T), nets: map[int]*net{}}
	s.eps = s.guidedEps
	return s
}

func (s *sampler) net(n int) (*net, error) {
	if d, ok := s.nets[n]; ok {
		return d, nil
	}
	if len(s.nets) >= 6 {
		for k, d := range s.nets {
			d.prog.Close()
			delete(s.nets, k)
		}
	}
	d, err := s.m.buildNet(n)
	if err != nil {
		return nil, err
	}
	s.nets[n] = d
	return d, nil
}

// close frees the compiled graphs.
func (s *sampler) close() {
	for k, d := range s.nets {
		d.prog.Close()
		delete(s.nets, k)
	}
}

// guidedEps predicts the noise of the n items of x at step t, with
// classifier-free guidance: one graph run over the conditional and the
// unconditional copies together.
func (s *sampler) guidedEps(dst, x []float32, t int, labels []int, g float64) error {
	n, per := len(labels), s.m.Arch.per()
	guided := g != 1 && s.m.Arch.Classes > 0 && slices.ContainsFunc(labels, func(l int) bool { return l >= 0 })
	rows := n
	if guided {
		rows = 2 * n
	}
	d, err := s.net(rows)
	if err != nil {
		return err
	}
	ts := make([]int, rows)
	for i := range ts {
		ts[i] = t
	}
	if !guided {
		return d.eps(dst, x, ts, labels)
	}
	xx := make([]float32, 2*n*per)
	copy(xx, x)
	copy(xx[n*per:], x)
	ll := make([]int, 2*n)
	copy(ll, labels)
	for i := n; i < 2*n; i++ {
		ll[i] = -1
	}
	out := make([]float32, 2*n*per)
	if err := d.eps(out, xx, ts, ll); err != nil {
		return err
	}
	gf := float32(g)
	for i := 0; i < n*per; i++ {
		u := out[n*per+i]
		dst[i] = u + gf*(out[i]-u)
	}
	return nil
}

// Run runs the reverse process on x (n items at step sp.From; for a
// generation, noise), one RNG per item for the noise it adds, and returns
// the result (x_0) and, with sp.Frames, the recorded frames.
func (s *sampler) Run(ctx context.Context, x []float32, labels []int, rngs []*nn.RNG, sp Sampling) ([]float32, [][]float32, error) {
	n, per := len(labels), s.per
	if len(x) != n*per || len(rngs) != n {
		return nil, nil, fmt.Errorf("sampler: %d values, %d labels and %d generators for items of %d values", len(x), n, len(rngs), per)
	}
	spacing := sp.Spacing
	if spacing == Auto || spacing == "" {
		spacing = map[Sampler]Spacing{DDPM: Linear, DDIM: Quadratic, DPMSolver: LogSNR}[sp.Sampler]
	}
	return s.runSteps(ctx, x, labels, rngs, sp, s.sched.Timesteps(sp.From, sp.Steps, spacing), -1)
}

// stepTo is one step of sp's sampler from step sp.From to step next (-1:
// the clean image), on x in place.
func (s *sampler) stepTo(ctx context.Context, x []float32, labels []int, rngs []*nn.RNG, sp Sampling, next int) ([]float32, [][]float32, error) {
	return s.runSteps(ctx, x, labels, rngs, sp, []int{sp.From}, next)
}

// runSteps evaluates the model at each step of ts in turn, moving x from
// one to the next and after the last to step end (-1: the clean image).
func (s *sampler) runSteps(ctx context.Context, x []float32, labels []int, rngs []*nn.RNG, sp Sampling, ts []int, end int) ([]float32, [][]float32, error) {
	n, per := len(labels), s.per
	eta := sp.Eta
	if sp.Sampler == DDPM {
		eta = 1
	}
	eps := make([]float32, n*per)
	x0 := make([]float32, n*per)
	prevX0 := make([]float32, n*per) // DPM-Solver's previous data prediction
	z := make([]float32, per)
	var frames [][]float32
	record := func(i int) {
		if sp.Frames <= 0 {
			return
		}
		// Frame f is taken after step ⌈(f+1)·len(ts)/Frames⌉ - 1.
		for len(frames) < sp.Frames && (len(frames)+1)*len(ts) <= (i+1)*sp.Frames {
			frames = append(frames, append([]float32(nil), x...))
		}
	}
	var hPrev float64
	for i, t := range ts {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if err := s.eps(eps, x, t, labels, sp.Guidance); err != nil {
			return nil, nil, err
		}
		ab := s.sched.alphaBar(t)
		sa, sb := math.Sqrt(ab), math.Sqrt(1-ab)
		for j := range x {
			v := (float64(x[j]) - sb*float64(eps[j])) / sa
			if sp.Clip > 0 {
				v = max(-sp.Clip, min(sp.Clip, v))
			}
			x0[j] = float32(v)
		}
		next := end
		if i+1 < len(ts) {
			next = ts[i+1]
		}
		abn := s.sched.alphaBar(next)
		switch sp.Sampler {
		case DPMSolver:
			if next < 0 {
				copy(x, x0)
				break
			}
			// λ = log(α/σ); x_next = (σ_n/σ)·x − α_n·(e^{−h} − 1)·D.
			lam := func(a float64) float64 { return 0.5 * math.Log(a/(1-a)) }
			h := lam(abn) - lam(ab)
			ratio := math.Sqrt(1-abn) / sb
			k := math.Sqrt(abn) * math.Expm1(-h)
			if i == 0 {
				for j := range x {
					x[j] = float32(ratio*float64(x[j]) - k*float64(x0[j]))
				}
			} else {
				r := hPrev / h
				c1, c2 := 1+1/(2*r), 1/(2*r)
				for j := range x {
					dj := c1*float64(x0[j]) - c2*float64(prevX0[j])
					x[j] = float32(ratio*float64(x[j]) - k*dj)
				}
			}
			hPrev = h
			copy(prevX0, x0)
		default: // DDIM and DDPM
			if next < 0 {
				copy(x, x0)
				break
			}
			sigma := eta * math.Sqrt((1-abn)/(1-ab)) * math.Sqrt(1-ab/abn)
			dir := math.Sqrt(max(1-abn-sigma*sigma, 0))
			for it := 0; it < n; it++ {
				if sigma > 0 {
					rngs[it].Normal(z, sp.Temperature)
				}
				for j := 0; j < per; j++ {
					q := it*per + j
					// The noise direction implied by the (clipped) x0.
					e := (float64(x[q]) - sa*float64(x0[q])) / sb
					v := math.Sqrt(abn)*float64(x0[q]) + dir*e
					if sigma > 0 {
						v += sigma * float64(z[j])
					}
					x[q] = float32(v)
				}
			}
		}
		if sp.Keep != nil {
			sp.Keep(x, next)
		}
		record(i)
	}
	return x, frames, nil
}
