package layers

import (
	"fmt"

	"github.com/genpipe/genpipe/nn/ops"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Act applies an element-wise activation as one fused op (alpha is
// LeakyReLU's negative slope, ignored otherwise). On a [64, 32, 28, 28]
// batch, forward and backward, gorgonia's LeakyRelu / Rectify / Sigmoid /
// Tanh / x·Sigmoid(x) cost about 43 / 12 / 32 / 20 / 41 ms and allocate
// 13-45 MB per run; these take 2-3 ms (tanh ~11 ms) and reuse their
// outputs. The derivative is linear in the incoming gradient, so second
// derivatives through ReLU and LeakyReLU work; for the smooth kinds
// differentiating twice is an error.
func (b *Builder) Act(x *G.Node, kind ops.ActKind, alpha float64) *G.Node {
	if !b.ok(x) {
		return nil
	}
	if !kind.Valid() {
		b.Fail("activation", fmt.Errorf("unknown activation %v", kind))
		return nil
	}
	if kind != ops.ActLeakyReLU {
		alpha = 0
	}
	ctx := kind.String()
	return b.Apply(ctx, func() (*G.Node, error) {
		return ops.Act(x, kind, float32(alpha))
	})
}

// SiLU is x·sigmoid(x) (PyTorch's nn.SiLU).
func (b *Builder) SiLU(x *G.Node) *G.Node { return b.Act(x, ops.ActSiLU, 0) }

// GroupNorm normalises x [N, C, ...] as PyTorch's nn.GroupNorm(groups, C)
// (eps 1e-5): per sample over each group of C/groups channels, then
// y = x̂·weight + bias per channel. weight and bias ([C]) may both be nil
// for affine=False. groups = C is InstanceNorm, groups = 1 a LayerNorm over
// (C, H, W) with per-channel affine.
func (b *Builder) GroupNorm(x *G.Node, groups int, weight, bias *Param) *G.Node {
	if !b.ok(x) {
		return nil
	}
	s := x.Shape()
	ctx := "group_norm"
	if weight != nil {
		ctx += " " + weight.Name
	}
	if len(s) < 3 || groups < 1 || s[1]%groups != 0 {
		b.Fail(ctx, fmt.Errorf("input %v: want [N, C, ...] with C divisible by %d groups", s, groups))
		return nil
	}
	if (weight == nil) != (bias == nil) {
		b.Fail(ctx, fmt.Errorf("weight and bias must both be given or both be nil"))
		return nil
	}
	var w, bb *G.Node
	if weight != nil {
		for _, p := range []*Param{weight, bias} {
			if len(p.Shape()) != 1 || p.Shape()[0] != s[1] {
				b.Fail(ctx, fmt.Errorf("%s has shape %v, want [%d]", p.Name, p.Shape(), s[1]))
				return nil
			}
		}
		w, bb = b.Param(weight), b.Param(bias)
	} else {
		w, bb = b.constVec("group_norm.ones", s[1], 1), b.constVec("group_norm.zeros", s[1], 0)
	}
	return b.Apply(ctx, func() (*G.Node, error) { return ops.GroupNorm(x, w, bb, groups) })
}

// constVec is a [c] node filled with v, not trained.
func (b *Builder) constVec(name string, c int, v float32) *G.Node {
	t := tensor.New(tensor.WithShape(c), tensor.Of(tensor.Float32))
	for i := range t.Data().([]float32) {
		t.Data().([]float32)[i] = v
	}
	return G.NewTensor(b.G, G.Float32, 1, G.WithShape(c), G.WithName(fmt.Sprintf("%s.%d", name, c)), G.WithValue(t))
}

// BatchNorm2d applies bn to x [N, C, H, W] with PyTorch's semantics. In
// training mode each run normalises with the batch's statistics (biased
// variance) and updates bn's running_mean and running_var (momentum, with
// the unbiased variance) and num_batches_tracked in its Params, as a side
// effect; in eval mode it normalises with the running statistics. Unlike
// gorgonia's BatchNorm the statistics live in the Params, so a training
// and an inference graph built from the same model never disturb each
// other's mode.
func (b *Builder) BatchNorm2d(x *G.Node, bn *BatchNorm, training bool) *G.Node {
	if !b.ok(x) {
		return nil
	}
	if bn == nil || bn.Weight == nil || bn.Bias == nil || bn.RunningMean == nil || bn.RunningVar == nil {
		b.Fail("batch_norm", fmt.Errorf("incomplete BatchNorm (use NewBatchNorm2d)"))
		return nil
	}
	s := x.Shape()
	ctx := "batch_norm " + bn.Weight.Name
	if len(s) != 4 {
		b.Fail(ctx, fmt.Errorf("input %v: want [N, C, H, W]", s))
		return nil
	}
	for _, p := range []*Param{bn.Weight, bn.Bias, bn.RunningMean, bn.RunningVar} {
		if len(p.Shape()) != 1 || p.Shape()[0] != s[1] {
			b.Fail(ctx, fmt.Errorf("%s has shape %v, want [%d]", p.Name, p.Shape(), s[1]))
			return nil
		}
	}
	if training && s[0]*s[2]*s[3] < 2 {
		b.Fail(ctx, fmt.Errorf("input %v: training needs more than one value per channel", s))
		return nil
	}
	rs := bn.runningStats()
	return b.Apply(ctx, func() (*G.Node, error) { return ops.BatchNorm2d(x, b.Param(bn.Weight), b.Param(bn.Bias), rs, training) })
}

// Upsample is nearest-neighbour upsampling of x [N, C, H, W] by an integer
// factor (PyTorch's nn.Upsample(scale_factor=f, mode="nearest")).
func (b *Builder) Upsample(x *G.Node, factor int) *G.Node {
	if !b.ok(x) {
		return nil
	}
	s := x.Shape()
	if len(s) != 4 || factor < 1 {
		b.Fail("upsample", fmt.Errorf("input %v, factor %d: want [N, C, H, W] and a positive factor", s, factor))
		return nil
	}
	return b.Apply("upsample", func() (*G.Node, error) {
		return ops.Upsample(x, factor)
	})
}

// SumPool sums x [N, C, H, W] over non-overlapping factor x factor blocks,
// the adjoint of Upsample (average pooling is SumPool / factor²).
func (b *Builder) SumPool(x *G.Node, factor int) *G.Node {
	if !b.ok(x) {
		return nil
	}
	s := x.Shape()
	if len(s) != 4 || factor < 1 || s[2]%factor != 0 || s[3]%factor != 0 {
		b.Fail("sum_pool", fmt.Errorf("input %v, factor %d: want [N, C, H, W] with H and W divisible by the factor", s, factor))
		return nil
	}
	return b.Apply("sum_pool", func() (*G.Node, error) {
		return ops.SumPool(x, factor)
	})
}

// AddSampleChannel adds v [N, C] to x [N, C, ...]: one value per sample and
// channel, broadcast over the rest (a U-Net's time-embedding injection).
func (b *Builder) AddSampleChannel(x, v *G.Node) *G.Node {
	if !b.ok(x, v) {
		return nil
	}
	s, vs := x.Shape(), v.Shape()
	if len(s) < 2 || len(vs) != 2 || vs[0] != s[0] || vs[1] != s[1] {
		b.Fail("add_sample_channel", fmt.Errorf("vector %v does not match [N, C] of %v", vs, s))
		return nil
	}
	return b.Apply("add_sample_channel", func() (*G.Node, error) {
		return ops.AddSampleChannel(x, v)
	})
}

// ConcatChannels concatenates [N, C_i, ...] tensors along the channel axis
// (torch.cat(xs, 1)). Forward and backward of two [64, 64, 14, 14] inputs
// cost ~31 ms and 13 MB per run with gorgonia's Concat, ~1 ms here (block
// copies into reused outputs).
func (b *Builder) ConcatChannels(xs ...*G.Node) *G.Node {
	if !b.ok(xs...) {
		return nil
	}
	if len(xs) == 0 {
		b.Fail("concat", fmt.Errorf("no inputs"))
		return nil
	}
	s0 := xs[0].Shape()
	for i, x := range xs {
		s := x.Shape()
		if len(s) < 2 || len(s) != len(s0) || s[0] != s0[0] || !tensor.Shape(s[2:]).Eq(tensor.Shape(s0[2:])) {
			b.Fail("concat", fmt.Errorf("input %d has shape %v, input 0 %v: want equal shapes except axis 1", i, s, s0))
			return nil
		}
	}
	in := append([]*G.Node(nil), xs...)
	return b.Apply("concat", func() (*G.Node, error) { return ops.ConcatChannels(in...) })
}

// MSE is the mean squared error mean((pred - target)²) over every element
// (PyTorch's F.mse_loss), a scalar differentiated in pred only.
func (b *Builder) MSE(pred, target *G.Node) *G.Node {
	if !b.ok(pred, target) {
		return nil
	}
	if !pred.Shape().Eq(target.Shape()) {
		b.Fail("mse", fmt.Errorf("prediction %v and target %v differ in shape", pred.Shape(), target.Shape()))
		return nil
	}
	return b.Apply("mse", func() (*G.Node, error) {
		return ops.MSE(pred, target)
	})
}

// SelfAttention is single-head self-attention over the positions of a
// feature map (see ops.SelfAttention): qkv [N, 3C, H, W] holds queries,
// keys and values in that channel order; the result is [N, C, H, W].
func (b *Builder) SelfAttention(qkv *G.Node) *G.Node {
	if !b.ok(qkv) {
		return nil
	}
	return b.Apply("self_attention", func() (*G.Node, error) { return ops.SelfAttention(qkv) })
}

// ScaleChannel is x·s per channel for x [N, C, ...] and s [C].
func (b *Builder) ScaleChannel(x, s *G.Node) *G.Node {
	if !b.ok(x, s) {
		return nil
	}
	if len(x.Shape()) < 2 || s.Shape().TotalSize() != x.Shape()[1] {
		b.Fail("scale_channel", fmt.Errorf("scale %v does not match the channels of %v", s.Shape(), x.Shape()))
		return nil
	}
	return b.Apply("scale_channel", func() (*G.Node, error) { return ops.ScaleChannel(x, s) })
}
