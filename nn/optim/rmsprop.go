package optim

import (
	"fmt"
	"math"
	"strconv"

	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// Optimizer updates parameters from their gradients and can save and
// restore its state in a checkpoint under a name prefix.
type Optimizer interface {
	Step(params []*layers.Param, grads [][]float32)
	State(prefix string, params []*layers.Param) ([]safetensors.Tensor, map[string]string)
	Restore(f *safetensors.File, prefix string, params []*layers.Param) error
	SetLR(lr float64)
}

var (
	_ Optimizer = (*Adam)(nil)
	_ Optimizer = (*RMSProp)(nil)
)

// SetLR changes the learning rate (for schedules).
func (a *Adam) SetLR(lr float64) { a.LR = lr }

// RMSProp is PyTorch's RMSprop without momentum or centering (the form WGAN
// trains with): v = α·v + (1−α)·g², w −= lr·g / (√v + ε).
type RMSProp struct {
	LR, Alpha, Eps float64
	Steps          int
	v              map[string][]float32
}

// NewRMSProp returns RMSProp with learning rate lr, α 0.99 and ε 1e-8.
func NewRMSProp(lr float64) *RMSProp {
	return &RMSProp{LR: lr, Alpha: 0.99, Eps: 1e-8, v: map[string][]float32{}}
}

// SetLR changes the learning rate.
func (r *RMSProp) SetLR(lr float64) { r.LR = lr }

// Step applies one update.
func (r *RMSProp) Step(params []*layers.Param, grads [][]float32) {
	r.Steps++
	a, lr, eps := float32(r.Alpha), float32(r.LR), float32(r.Eps)
	for i, p := range params {
		w, g := p.Data(), grads[i]
		v := r.v[p.Name]
		if v == nil {
			v = make([]float32, len(w))
			r.v[p.Name] = v
		}
		for j, gj := range g {
			vj := a*v[j] + (1-a)*gj*gj
			v[j] = vj
			w[j] -= lr * gj / (float32(math.Sqrt(float64(vj))) + eps)
		}
	}
}

// State returns the squared-gradient averages as prefix+"v."+param and the
// step count as prefix+"steps".
func (r *RMSProp) State(prefix string, params []*layers.Param) ([]safetensors.Tensor, map[string]string) {
	var ts []safetensors.Tensor
	for _, p := range params {
		if v := r.v[p.Name]; v != nil {
			ts = append(ts, safetensors.F32(prefix+"v."+p.Name, p.Shape(), v))
		}
	}
	return ts, map[string]string{prefix + "steps": strconv.Itoa(r.Steps)}
}

// Restore loads a state saved by State with the same prefix.
func (r *RMSProp) Restore(f *safetensors.File, prefix string, params []*layers.Param) error {
	steps, err := strconv.Atoi(f.Metadata[prefix+"steps"])
	if err != nil {
		return fmt.Errorf("rmsprop: checkpoint has no valid %ssteps: %w", prefix, err)
	}
	r.Steps = steps
	for _, p := range params {
		t := f.Tensor(prefix + "v." + p.Name)
		if t == nil {
			delete(r.v, p.Name)
			continue
		}
		d, err := t.Float32()
		if err != nil {
			return fmt.Errorf("rmsprop: %q: %w", t.Name, err)
		}
		if len(d) != len(p.Data()) {
			return fmt.Errorf("rmsprop: %q has %d values, parameter has %d", t.Name, len(d), len(p.Data()))
		}
		r.v[p.Name] = append([]float32(nil), d...)
	}
	return nil
}
