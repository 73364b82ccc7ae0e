package layers

import (
	"strings"

	"github.com/genpipe/genpipe/nn"
	G "gorgonia.org/gorgonia"
)

// Init is how the layers of a Scope initialise the parameters they create.
type Init int

// The initialisations. Each layer draws from the scope's RNG in the order
// it creates its parameters (weight, then bias), so a model declared in
// the same order from the same seed starts from the same values.
const (
	// TorchInit is PyTorch's default for each layer: weights and biases
	// of Conv2d, ConvTranspose2d and Linear U(±1/sqrt(fan_in)) (its
	// kaiming_uniform_ with a=sqrt(5)); BatchNorm weight 1, bias 0.
	TorchInit Init = iota
	// DCGANInit is Radford et al. 2016's: weights N(0, 0.02), biases 0,
	// BatchNorm weight N(1, 0.02) and bias 0.
	DCGANInit
)

// Scope is a place in a model's parameter tree: a name prefix over the
// model's Params, the RNG that initialises what is declared there and the
// initialisation to use. A model declares its layers under scopes, so
// that s.In("encoder").Conv2d("0", ...) creates encoder.0.weight and
// encoder.0.bias, initialised, and the model keeps the layer rather than
// spelling those names again. Names and creation order are the state_dict
// of the model's PyTorch twin.
type Scope struct {
	ps     *Params
	rng    *nn.RNG
	init   Init
	prefix string
}

// NewScope is the root scope of ps, initialising from rng with TorchInit.
func NewScope(ps *Params, rng *nn.RNG) Scope { return Scope{ps: ps, rng: rng} }

// In is the scope of a sub-module named name (PyTorch's attribute name or
// nn.Sequential index).
func (s Scope) In(name string) Scope {
	s.prefix = s.Name(name)
	return s
}

// WithInit is the same scope initialising its layers with init.
func (s Scope) WithInit(init Init) Scope {
	s.init = init
	return s
}

// Name is the full name of leaf in this scope ("encoder.0" + "weight").
func (s Scope) Name(leaf string) string {
	if s.prefix == "" {
		return leaf
	}
	return s.prefix + "." + leaf
}

// Buffer creates a zero buffer (saved, not trained) named leaf.
func (s Scope) Buffer(leaf string, shape ...int) *Param {
	return s.ps.AddBuffer(s.Name(leaf), shape...)
}

// weight creates a parameter and initialises it as a layer weight of the
// given fan-in.
func (s Scope) weight(leaf string, fanIn int, shape ...int) *Param {
	p := s.ps.Add(s.Name(leaf), shape...)
	switch s.init {
	case DCGANInit:
		s.rng.Normal(p.Data(), 0.02)
	default:
		s.rng.KaimingUniform(p.Data(), fanIn)
	}
	return p
}

// bias creates a layer's bias of the given fan-in: like its weight in
// PyTorch, zero under DCGANInit.
func (s Scope) bias(leaf string, fanIn, n int) *Param {
	p := s.ps.Add(s.Name(leaf), n)
	if s.init != DCGANInit {
		s.rng.KaimingUniform(p.Data(), fanIn)
	}
	return p
}

// TrainableIn returns the trainable parameters declared under the scope
// name (e.g. a GAN's "generator"), in creation order: what one network's
// optimiser steps.
func (ps *Params) TrainableIn(scope string) []*Param {
	var out []*Param
	for _, p := range ps.Trainable() {
		if strings.HasPrefix(p.Name, scope+".") {
			out = append(out, p)
		}
	}
	return out
}

// Conv2d is PyTorch's nn.Conv2d with square kernels, stride and padding:
// weight [out, in, k, k] and bias [out].
type Conv2d struct {
	// Weight is [out, in, k, k]; Bias is [out].
	Weight, Bias *Param
	// Stride and Pad apply to both spatial axes.
	Stride, Pad int
}

// Conv2d declares a convolution named name from in to out channels.
func (s Scope) Conv2d(name string, in, out, k, stride, pad int) *Conv2d {
	s = s.In(name)
	fanIn := in * k * k
	w := s.weight("weight", fanIn, out, in, k, k)
	return &Conv2d{Weight: w, Bias: s.bias("bias", fanIn, out), Stride: stride, Pad: pad}
}

// Forward applies the convolution to x [N, in, H, W].
func (c *Conv2d) Forward(b *Builder, x *G.Node) *G.Node {
	return b.Conv2d(x, c.Weight, c.Bias, c.Stride, c.Pad)
}

// ConvTranspose2d is PyTorch's nn.ConvTranspose2d with square kernels:
// weight [in, out, k, k] and bias [out].
type ConvTranspose2d struct {
	// Weight is [in, out, k, k]; Bias is [out].
	Weight, Bias *Param
	// Stride, Pad and OutPad (output_padding) apply to both spatial axes.
	Stride, Pad, OutPad int
}

// ConvTranspose2d declares a transposed convolution named name from in to
// out channels (outPad is PyTorch's output_padding).
func (s Scope) ConvTranspose2d(name string, in, out, k, stride, pad, outPad int) *ConvTranspose2d {
	s = s.In(name)
	// PyTorch computes the fan-in from weight.size(1)·k·k: out, here.
	fanIn := out * k * k
	w := s.weight("weight", fanIn, in, out, k, k)
	return &ConvTranspose2d{Weight: w, Bias: s.bias("bias", fanIn, out), Stride: stride, Pad: pad, OutPad: outPad}
}

// Forward applies the transposed convolution to x [N, in, H, W].
func (c *ConvTranspose2d) Forward(b *Builder, x *G.Node) *G.Node {
	return b.ConvTranspose2d(x, c.Weight, c.Bias, c.Stride, c.Pad, c.OutPad)
}

// Linear is PyTorch's nn.Linear: weight [out, in] and bias [out].
type Linear struct {
	// Weight is [out, in]; Bias is [out].
	Weight, Bias *Param
}

// Linear declares a dense layer named name from in to out features.
func (s Scope) Linear(name string, in, out int) *Linear {
	s = s.In(name)
	w := s.weight("weight", in, out, in)
	return &Linear{Weight: w, Bias: s.bias("bias", in, out)}
}

// Forward computes x·Wᵀ + b for x [N, in].
func (l *Linear) Forward(b *Builder, x *G.Node) *G.Node {
	return b.Linear(x, l.Weight, l.Bias)
}

// BatchNorm2d declares a BatchNorm2d of c channels named name (see
// NewBatchNorm2d); under DCGANInit its weight is drawn from N(1, 0.02).
func (s Scope) BatchNorm2d(name string, c int) *BatchNorm {
	bn := NewBatchNorm2d(s.ps, s.Name(name), c)
	if s.init == DCGANInit {
		w := bn.Weight.Data()
		s.rng.Normal(w, 0.02)
		for i := range w {
			w[i]++
		}
	}
	return bn
}

// Forward normalises x [N, C, H, W] with the batch's statistics, updating
// the running ones (training), or with the running ones.
func (bn *BatchNorm) Forward(b *Builder, x *G.Node, training bool) *G.Node {
	return b.BatchNorm2d(x, bn, training)
}
