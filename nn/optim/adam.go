package optim

import (
	"fmt"
	"math"
	"strconv"

	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// Adam is the Adam optimizer (Kingma & Ba 2015) with PyTorch's defaults and
// update rule, including optional decoupled weight decay (AdamW). Its
// moments are ordinary tensors so a checkpoint can save and restore them
// and a resumed run continues exactly (gorgonia's solver keeps them
// unexported).
type Adam struct {
	LR, Beta1, Beta2, Eps float64
	// WeightDecay is AdamW's decoupled decay (0: plain Adam).
	WeightDecay float64
	// Steps counts updates; bias correction depends on it.
	Steps int
	m, v  map[string][]float32
}

// NewAdam returns Adam with learning rate lr and betas 0.9, 0.999, eps 1e-8.
func NewAdam(lr float64) *Adam {
	return &Adam{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, m: map[string][]float32{}, v: map[string][]float32{}}
}

// Step applies one update to each parameter given its gradient.
func (a *Adam) Step(params []*layers.Param, grads [][]float32) {
	a.Steps++
	b1, b2 := a.Beta1, a.Beta2
	c1 := 1 - math.Pow(b1, float64(a.Steps))
	c2 := 1 - math.Pow(b2, float64(a.Steps))
	lr := float32(a.LR / c1)
	sq := float32(1 / math.Sqrt(c2))
	eps := float32(a.Eps)
	decay := float32(1 - a.LR*a.WeightDecay)
	fb1, fb2 := float32(b1), float32(b2)
	for i, p := range params {
		w, g := p.Data(), grads[i]
		m, v := a.m[p.Name], a.v[p.Name]
		if m == nil {
			m, v = make([]float32, len(w)), make([]float32, len(w))
			a.m[p.Name], a.v[p.Name] = m, v
		}
		for j, gj := range g {
			mj := fb1*m[j] + (1-fb1)*gj
			vj := fb2*v[j] + (1-fb2)*gj*gj
			m[j], v[j] = mj, vj
			wj := w[j]
			if a.WeightDecay != 0 {
				wj *= decay
			}
			w[j] = wj - lr*mj/(float32(math.Sqrt(float64(vj)))*sq+eps)
		}
	}
}

// State returns the moments of the parameters it has updated as tensors
// named prefix+"m."+param and prefix+"v."+param, and the step count as
// metadata prefix+"steps". Several optimizers (a GAN's generator and
// critic) share one checkpoint under different prefixes.
func (a *Adam) State(prefix string, params []*layers.Param) ([]safetensors.Tensor, map[string]string) {
	var ts []safetensors.Tensor
	for _, p := range params {
		if m := a.m[p.Name]; m != nil {
			ts = append(ts, safetensors.F32(prefix+"m."+p.Name, p.Shape(), m), safetensors.F32(prefix+"v."+p.Name, p.Shape(), a.v[p.Name]))
		}
	}
	return ts, map[string]string{prefix + "steps": strconv.Itoa(a.Steps)}
}

// Restore loads moments saved by State with the same prefix. Parameters
// with no saved moments had not been updated by this optimizer.
func (a *Adam) Restore(f *safetensors.File, prefix string, params []*layers.Param) error {
	steps, err := strconv.Atoi(f.Metadata[prefix+"steps"])
	if err != nil {
		return fmt.Errorf("adam: checkpoint has no valid %ssteps: %w", prefix, err)
	}
	a.Steps = steps
	if steps == 0 {
		return nil
	}
	for _, p := range params {
		if f.Tensor(prefix+"m."+p.Name) == nil && f.Tensor(prefix+"v."+p.Name) == nil {
			delete(a.m, p.Name)
			delete(a.v, p.Name)
			continue
		}
		for _, kind := range []string{"m", "v"} {
			name := prefix + kind + "." + p.Name
			t := f.Tensor(name)
			if t == nil {
				return fmt.Errorf("adam: checkpoint lacks %q", name)
			}
			d, err := t.Float32()
			if err != nil {
				return fmt.Errorf("adam: %q: %w", name, err)
			}
			if len(d) != len(p.Data()) {
				return fmt.Errorf("adam: %q has %d values, parameter has %d", name, len(d), len(p.Data()))
			}
			if kind == "m" {
				a.m[p.Name] = append([]float32(nil), d...)
			} else {
				a.v[p.Name] = append([]float32(nil), d...)
			}
		}
	}
	return nil
}
