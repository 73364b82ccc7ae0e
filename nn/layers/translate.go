package layers

import (
	"fmt"
	"hash/fnv"
	"math"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/ops"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The layers of the image-to-image translation family (pix2pix, Isola et
// al. 2017; CycleGAN, Zhu et al. 2017): reflection padding, instance
// normalisation, dropout driven by per-item seeds, and the L1 loss.

// ReflectionPad2d pads x [N, C, H, W] by pad on every side with its mirror
// image about the edge pixel (PyTorch's nn.ReflectionPad2d(pad)), which
// CycleGAN uses before its 7x7 and residual 3x3 convolutions so that the
// borders see image content rather than zeros. pad must be smaller than H
// and W, as in PyTorch.
func (b *Builder) ReflectionPad2d(x *G.Node, pad int) *G.Node {
	if !b.ok(x) {
		return nil
	}
	s := x.Shape()
	ctx := fmt.Sprintf("reflection_pad %d", pad)
	if len(s) != 4 {
		b.Fail(ctx, fmt.Errorf("input %v: expected [N, C, H, W]", s))
		return nil
	}
	if pad < 0 || pad >= s[2] || pad >= s[3] {
		b.Fail(ctx, fmt.Errorf("input %v: expected padding in [0, %d) (smaller than height and width), got %d", s, min(s[2], s[3]), pad))
		return nil
	}
	if pad == 0 {
		return x
	}
	return b.Apply(ctx, func() (*G.Node, error) { return ops.ReflectionPad2d(x, pad) })
}

// InstanceNorm is PyTorch's nn.InstanceNorm2d(c, affine=...,
// track_running_stats=False): each sample's channel is normalised over its
// own H x W (biased variance, eps 1e-5), in training and inference alike,
// so it keeps no running statistics. With affine it has weight (ones) and
// bias (zeros) [C]; CycleGAN's and pix2pix's default is without.
type InstanceNorm struct {
	// Name is the layer's state_dict prefix, for messages.
	Name string
	// C is the number of channels.
	C int
	// Weight and Bias are [C], or both nil without affine.
	Weight, Bias *Param
}

// InstanceNorm2d declares an instance normalisation of c channels named
// name. It is GroupNorm with one group per channel.
func (s Scope) InstanceNorm2d(name string, c int, affine bool) *InstanceNorm {
	in := &InstanceNorm{Name: s.Name(name), C: c}
	if affine {
		s = s.In(name)
		in.Weight = s.ps.Add(s.Name("weight"), c)
		for i := range in.Weight.Data() {
			in.Weight.Data()[i] = 1
		}
		in.Bias = s.ps.Add(s.Name("bias"), c)
	}
	return in
}

// Forward normalises x [N, C, H, W].
func (in *InstanceNorm) Forward(b *Builder, x *G.Node) *G.Node {
	if !b.ok(x) {
		return nil
	}
	s := x.Shape()
	if len(s) != 4 || s[1] != in.C || s[2]*s[3] < 2 {
		b.Fail("instance_norm "+in.Name, fmt.Errorf("input %v: expected [N, %d, H, W] with more than one pixel", s, in.C))
		return nil
	}
	return b.GroupNorm(x, in.C, in.Weight, in.Bias)
}

// DropoutMask is the mask input of one dropout layer: a [N, ...] tensor
// of 0 and 1/(1-P) (PyTorch's scaling, so that the expectation is the
// identity), which the caller fills before every run with Fill. Keeping
// the mask an input lets a Program compiled once draw new noise on every
// run, and filling it per item from the item's seed makes an item's result
// independent of the batch it is in and its place there: pix2pix's only
// noise is dropout, on in training and inference alike.
type DropoutMask struct {
	// Name tells the layer's masks apart (seeds are mixed with it, so two
	// layers of the same shape drop different elements).
	Name string
	// P is the probability of dropping an element.
	P float64
	// Node is the mask input of the graph.
	Node  *G.Node
	salt  uint64
	shape []int
}

// Dropout multiplies x [N, ...] by a mask input that m.Fill sets per run
// from per-item seeds. Until the first Fill the mask is NaN, so a program
// run without one yields NaN rather than a silently undropped result.
// name must be unique among the graph's dropout layers: it names the mask
// input and tells the layers' masks apart. m is nil if the builder failed.
func (b *Builder) Dropout(x *G.Node, name string, p float64) (*G.Node, *DropoutMask) {
	if !b.ok(x) {
		return nil, nil
	}
	ctx := "dropout " + name
	s := x.Shape()
	if len(s) < 1 || s[0] < 1 {
		b.Fail(ctx, fmt.Errorf("input %v: expected a batch axis first", s))
		return nil, nil
	}
	if !(p >= 0 && p < 1) {
		b.Fail(ctx, fmt.Errorf("drop probability %v: expected 0 <= p < 1", p))
		return nil, nil
	}
	shape := append([]int(nil), s...)
	mask := b.Input("dropout_mask."+name, shape...)
	nan := float32(math.NaN())
	for i := range Data(mask) {
		Data(mask)[i] = nan
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	m := &DropoutMask{Name: name, P: p, Node: mask, salt: h.Sum64(), shape: shape}
	y := b.Apply(ctx, func() (*G.Node, error) { return ops.MulMask(x, mask) })
	return y, m
}

// Fill sets the mask for the next run: item i's from seeds[i], mixed with
// the layer's name. The same seed gives the same mask whatever the batch.
func (m *DropoutMask) Fill(seeds []uint64) error {
	if m == nil {
		return fmt.Errorf("dropout: no mask (the graph failed to build)")
	}
	mixed := make([]uint64, len(seeds))
	for i, s := range seeds {
		mixed[i] = mix64(s ^ m.salt)
	}
	if err := FillDropoutMask(Data(m.Node), m.shape, m.P, mixed); err != nil {
		return fmt.Errorf("dropout %s: %w", m.Name, err)
	}
	return nil
}

// mix64 is splitmix64's finaliser: nearby seeds (item indices, steps) give
// unrelated streams.
func mix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// FillDropoutMask fills dst, a mask of the given shape [N, ...], item by
// item: item i's elements are dropped (0) with probability p and kept
// (1/(1-p)) otherwise, drawn in order from nn.NewRNG(seeds[i]).
func FillDropoutMask(dst []float32, shape []int, p float64, seeds []uint64) error {
	if len(shape) < 1 || tensor.Shape(shape).TotalSize() != len(dst) {
		return fmt.Errorf("mask of shape %v: expected %d values, got %d", shape, tensor.Shape(shape).TotalSize(), len(dst))
	}
	if len(seeds) != shape[0] {
		return fmt.Errorf("mask of shape %v: expected %d seeds (one per item), got %d", shape, shape[0], len(seeds))
	}
	if !(p >= 0 && p < 1) {
		return fmt.Errorf("drop probability %v: expected 0 <= p < 1", p)
	}
	keep, per := float32(1/(1-p)), len(dst)/shape[0]
	for i, seed := range seeds {
		rng := nn.NewRNG(seed)
		for j, row := 0, dst[i*per:(i+1)*per]; j < len(row); j++ {
			if float64(rng.Float32()) < p {
				row[j] = 0
			} else {
				row[j] = keep
			}
		}
	}
	return nil
}

// L1 is the mean absolute error mean|pred - target| over every element
// (PyTorch's F.l1_loss), a scalar differentiated in both inputs (pix2pix's
// reconstruction loss, CycleGAN's cycle and identity losses).
func (b *Builder) L1(pred, target *G.Node) *G.Node {
	if !b.ok(pred, target) {
		return nil
	}
	if !pred.Shape().Eq(target.Shape()) {
		b.Fail("l1", fmt.Errorf("prediction %v and target %v differ in shape", pred.Shape(), target.Shape()))
		return nil
	}
	return b.Apply("l1", func() (*G.Node, error) { return ops.L1(pred, target) })
}

// Add is a + c for nodes of the same shape: a residual connection (one
// fused op, see ops.Add), or a sum of scalar losses.
func (b *Builder) Add(a, c *G.Node) *G.Node {
	if !b.ok(a, c) {
		return nil
	}
	if !a.Shape().Eq(c.Shape()) {
		b.Fail("add", fmt.Errorf("shapes %v and %v differ", a.Shape(), c.Shape()))
		return nil
	}
	if a.IsScalar() {
		return b.Apply("add", func() (*G.Node, error) { return G.Add(a, c) })
	}
	return b.Apply("add", func() (*G.Node, error) { return ops.Add(a, c) })
}

// Scale is x·k for a constant k (a loss weight such as CycleGAN's λ = 10
// on the cycle loss).
func (b *Builder) Scale(x *G.Node, k float64) *G.Node {
	if !b.ok(x) {
		return nil
	}
	return b.Apply("scale", func() (*G.Node, error) { return G.Mul(x, G.NewConstant(float32(k))) })
}
