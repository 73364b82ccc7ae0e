package diffusion

import "math"

// T is the number of diffusion steps every preset trains with.
const T = 1000

// Schedule is the forward process q(x_t | x_0) = N(√ᾱ_t·x_0, (1−ᾱ_t)·I),
// t = 0..T-1 (t = 0 is the first noising step, not the clean image).
type Schedule struct {
	// AlphaBar[t] is ᾱ_t = Π_{s<=t} (1 − β_s).
	AlphaBar []float64
}

// Cosine is Nichol and Dhariwal's cosine schedule (2021): ᾱ(t) =
// f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s)·π/2), s = 0.008, with each
// β_t = 1 − ᾱ_t/ᾱ_{t−1} clipped to 0.999 so that the last steps do not
// divide by a vanishing ᾱ.
func Cosine(steps int) Schedule {
	const s = 0.008
	f := func(t float64) float64 {
		c := math.Cos((t/float64(steps) + s) / (1 + s) * math.Pi / 2)
		return c * c
	}
	ab := make([]float64, steps)
	prod := 1.0
	for t := 0; t < steps; t++ {
		beta := min(1-f(float64(t+1))/f(float64(t)), 0.999)
		prod *= 1 - beta
		ab[t] = prod
	}
	return Schedule{AlphaBar: ab}
}

// alphaBar is ᾱ_t, with ᾱ_{-1} = 1 (the clean image).
func (s Schedule) alphaBar(t int) float64 {
	if t < 0 {
		return 1
	}
	return s.AlphaBar[t]
}

// Sigma is the noise-to-signal ratio √((1−ᾱ_t)/ᾱ_t) at step t: an image
// noised to step t, divided by √ᾱ_t, is x_0 plus Gaussian noise of this
// standard deviation.
func (s Schedule) Sigma(t int) float64 {
	ab := s.alphaBar(t)
	return math.Sqrt((1 - ab) / ab)
}

// StepForSigma is the step whose Sigma is closest to sigma (noise of
// standard deviation sigma on an image in the model's [-1, 1] units).
func (s Schedule) StepForSigma(sigma float64) int {
	best, bd := 0, math.Inf(1)
	for t := range s.AlphaBar {
		if d := math.Abs(math.Log(s.Sigma(t)) - math.Log(sigma)); d < bd {
			best, bd = t, d
		}
	}
	return best
}

// Spacing is how a sampler of n steps spreads them over the T steps.
type Spacing string

// The spacings. With the exact noise prediction of Gaussian data (see
// TestSamplersReachTheData) the samples' spread at 10/20/50 steps shows
// which suits which solver: DDIM under-disperses with linear steps (first
// order: 0.69/0.84/0.94 of the data's deviation 0.2) and less with
// quadratic ones (0.84/0.92/0.96); DPM-Solver++(2M) over-disperses with
// linear steps (1.32/1.25/1.07) and is within 2-3 % with steps uniform in
// log-SNR (0.98/1.03/1.005), as its paper recommends for small images.
const (
	// Auto picks the sampler's own: linear for DDPM, quadratic for DDIM,
	// log-SNR for DPM-Solver.
	Auto Spacing = "auto"
	// Linear spaces the steps evenly in t.
	Linear Spacing = "linear"
	// Quadratic spaces them as t ∝ s², s evenly spaced (DDIM's CIFAR
	// setting): more steps at low noise, where the details are made.
	Quadratic Spacing = "quadratic"
	// LogSNR spaces them evenly in λ = log(√ᾱ/√(1−ᾱ)).
	LogSNR Spacing = "logsnr"
)

// Timesteps is the descending sequence of steps a sampler of n steps
// visits from step from (T-1 for a full generation) down to step 0, so
// that the process starts where the model was trained to start and its
// last prediction of the clean image is made from the least noise
// (predicting from a noisier last step returns the posterior mean there,
// blurrier and less varied). Steps are distinct: where a spacing would
// round two to the same step, one moves to the next free step.
func (s Schedule) Timesteps(from, n int, spacing Spacing) []int {
	n = max(1, min(n, from+1))
	if n == 1 {
		return []int{from}
	}
	ts := make([]int, n)
	lam := func(t int) float64 { return 0.5 * math.Log(s.AlphaBar[t]/(1-s.AlphaBar[t])) }
	for i := range ts {
		u := float64(n-1-i) / float64(n-1) // 1 at the start, 0 at the end
		switch spacing {
		case Quadratic:
			ts[i] = int(math.Round(float64(from) * u * u))
		case LogSNR:
			// The step whose λ is nearest the evenly spaced target.
			target := lam(0) + (lam(from)-lam(0))*u
			best := 0
			for t := 0; t <= from; t++ {
				if math.Abs(lam(t)-target) < math.Abs(lam(best)-target) {
					best = t
				}
			}
			ts[i] = best
		default:
			ts[i] = int(math.Round(float64(from) * u))
		}
	}
	// Distinct steps: down from the top, then up from 0 (n <= from+1
	// keeps them within [0, from]).
	ts[0], ts[n-1] = from, 0
	for i := 1; i < n; i++ {
		ts[i] = min(ts[i], ts[i-1]-1)
	}
	ts[n-1] = 0
	for i := n - 2; i >= 0; i-- {
		ts[i] = max(ts[i], ts[i+1]+1)
	}
	return ts
}

// sinusoidal writes the [len(ts), dim] time features [sin(t·f_i),
// cos(t·f_i)], f_i = 10000^(−i/(dim/2)) (the DDPM embedding, as the
// PyTorch twin computes it).
func sinusoidal(dst []float32, ts []float64, dim int) {
	half := dim / 2
	for n, t := range ts {
		for i := 0; i < half; i++ {
			f := float32(math.Exp(-math.Log(10000) * float64(i) / float64(half)))
			a := t * float64(f)
			dst[n*dim+i] = float32(math.Sin(a))
			dst[n*dim+half+i] = float32(math.Cos(a))
		}
	}
}
