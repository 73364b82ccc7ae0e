package nn

import (
	"math"
	"math/rand/v2"
)

// RNG is the seeded random source of a model: weight initialisation,
// training noise and sampling all draw from one, so a run is reproducible
// from its seed. (gorgonia's own initialisers and noise nodes seed from the
// clock, which is why models here never use them.) Its state can be saved
// in a checkpoint and restored.
type RNG struct {
	pcg *rand.PCG
	r   *rand.Rand
}

// NewRNG returns an RNG seeded from seed.
func NewRNG(seed uint64) *RNG {
	p := rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)
	return &RNG{pcg: p, r: rand.New(p)}
}

// Float32 returns a uniform value in [0, 1).
func (g *RNG) Float32() float32 { return g.r.Float32() }

// IntN returns a uniform value in [0, n).
func (g *RNG) IntN(n int) int { return g.r.IntN(n) }

// Normal fills dst with N(0, std²) values.
func (g *RNG) Normal(dst []float32, std float64) {
	for i := range dst {
		dst[i] = float32(g.r.NormFloat64() * std)
	}
}

// Uniform fills dst with values uniform in [lo, hi).
func (g *RNG) Uniform(dst []float32, lo, hi float64) {
	for i := range dst {
		dst[i] = float32(lo + (hi-lo)*g.r.Float64())
	}
}

// KaimingUniform fills a weight with PyTorch's default initialisation for
// Linear and Conv layers (kaiming_uniform_ with a=sqrt(5)): U(-b, b) with
// b = 1/sqrt(fanIn), so models start where their PyTorch twins would.
func (g *RNG) KaimingUniform(dst []float32, fanIn int) {
	b := 1 / math.Sqrt(float64(fanIn))
	g.Uniform(dst, -b, b)
}

// MarshalBinary saves the generator state (for checkpoints).
func (g *RNG) MarshalBinary() ([]byte, error) { return g.pcg.MarshalBinary() }

// UnmarshalBinary restores a state saved by MarshalBinary.
func (g *RNG) UnmarshalBinary(b []byte) error { return g.pcg.UnmarshalBinary(b) }
