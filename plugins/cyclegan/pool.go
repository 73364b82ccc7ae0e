package cyclegan

import (
	"fmt"
	"strconv"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// pool is Shrivastava et al. 2017's history of generated images, as
// CycleGAN uses it: the discriminator sees fakes from earlier generators
// too, which damps oscillation. Until it holds size images every fake is
// stored and passed through; then each fake, with probability one half,
// is swapped for a stored one (which it replaces), else passed through.
type pool struct {
	name   string
	size   int
	per    int         // values per image
	images [][]float32 // at most size
}

func newPool(name string, size int) *pool { return &pool{name: name, size: size} }

// query returns the images the discriminator sees in place of fakes (n
// images of per values each, concatenated), drawing from rng.
func (p *pool) query(fakes []float32, n int, rng *nn.RNG) ([]float32, error) {
	if n == 0 || len(fakes)%n != 0 {
		return nil, fmt.Errorf("pool %s: %d values for %d images", p.name, len(fakes), n)
	}
	per := len(fakes) / n
	if p.per != 0 && p.per != per {
		return nil, fmt.Errorf("pool %s: images of %d values, the pool holds images of %d", p.name, per, p.per)
	}
	p.per = per
	out := make([]float32, len(fakes))
	for i := 0; i < n; i++ {
		img := fakes[i*per : (i+1)*per]
		dst := out[i*per : (i+1)*per]
		switch {
		case p.size == 0:
			copy(dst, img)
		case len(p.images) < p.size:
			p.images = append(p.images, append([]float32(nil), img...))
			copy(dst, img)
		case rng.Float32() > 0.5:
			j := rng.IntN(p.size)
			copy(dst, p.images[j])
			copy(p.images[j], img)
		default:
			copy(dst, img)
		}
	}
	return out, nil
}

// pools checkpoints a trainer's pools (nn/train.Stateful).
type pools []*pool

func (ps pools) State() ([]safetensors.Tensor, map[string]string, error) {
	var ts []safetensors.Tensor
	meta := map[string]string{}
	for _, p := range ps {
		meta["pool."+p.name] = strconv.Itoa(len(p.images))
		if len(p.images) == 0 {
			continue
		}
		flat := make([]float32, 0, len(p.images)*p.per)
		for _, img := range p.images {
			flat = append(flat, img...)
		}
		ts = append(ts, safetensors.F32("pool."+p.name, []int{len(p.images), p.per}, flat))
	}
	return ts, meta, nil
}

func (ps pools) Restore(f *safetensors.File) error {
	for _, p := range ps {
		n, err := strconv.Atoi(f.Metadata["pool."+p.name])
		if err != nil {
			return fmt.Errorf("checkpoint pool %s: %w", p.name, err)
		}
		p.images, p.per = nil, 0
		if n == 0 {
			continue
		}
		t := f.Tensor("pool." + p.name)
		if t == nil || len(t.Shape) != 2 || t.Shape[0] != n || n > p.size {
			return fmt.Errorf("checkpoint pool %s: want %d images (at most %d)", p.name, n, p.size)
		}
		v, err := t.Float32()
		if err != nil {
			return fmt.Errorf("checkpoint pool %s: %w", p.name, err)
		}
		p.per = t.Shape[1]
		for i := 0; i < n; i++ {
			p.images = append(p.images, append([]float32(nil), v[i*p.per:(i+1)*p.per]...))
		}
	}
	return nil
}
