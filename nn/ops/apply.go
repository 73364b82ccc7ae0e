package ops

import (
	G "gorgonia.org/gorgonia"
)

// The functions below add one op to the graph of their inputs. They
// assume shapes a caller has checked (layers.Builder checks them and names
// the layer in its errors); gorgonia reports a mismatch it can see.

// shapeOf copies n's shape: an op keeps it, and gorgonia may reuse the
// node's slice.
func shapeCopy(n *G.Node) []int { return append([]int(nil), n.Shape()...) }

// Conv2d is the convolution of geometry g: x [Batch, In, H, W] and
// w [Out, In, KH, KW] give [Batch, Out, OH, OW].
func Conv2d(g ConvGeom, x, w *G.Node) (*G.Node, error) {
	return G.ApplyOp(newConvOp(kConv, g), x, w)
}

// Conv2dBias is Conv2d plus b [Out] per output channel, then max(·, 0)
// when relu is set, fused into the convolution's output pass.
func Conv2dBias(g ConvGeom, x, w, b *G.Node, relu bool) (*G.Node, error) {
	return G.ApplyOp(newConvBiasOp(g, relu), x, w, b)
}

// ConvTranspose2d is the transpose of the convolution of geometry g:
// x [Batch, Out, OH, OW] and w [Out, In, KH, KW] give [Batch, In, H, W].
func ConvTranspose2d(g ConvGeom, x, w *G.Node) (*G.Node, error) {
	return G.ApplyOp(newConvOp(kConvT, g), x, w)
}

// MatMul is op(a)·op(b) for 2-D a and b, op transposing when tA or tB is
// set; the result is [m, n] and k the inner size.
func MatMul(a, b *G.Node, tA, tB bool, m, n, k int) (*G.Node, error) {
	return G.ApplyOp(newMMOp(tA, tB, m, n, k), a, b)
}

// AddChannel adds v [C] along axis 1 of x [N, C, ...] (a bias).
func AddChannel(x, v *G.Node) (*G.Node, error) {
	return G.ApplyOp(newChanOp(kBias, shapeCopy(x)), x, v)
}

// AddSampleChannel adds v [N, C] to x [N, C, ...], broadcast over the rest.
func AddSampleChannel(x, v *G.Node) (*G.Node, error) {
	return G.ApplyOp(newNCOp(kBias, shapeCopy(x)), x, v)
}

// BCEWithLogitsSum is Σ softplus(l) − t·l over every element, a scalar
// differentiated in the logits only.
func BCEWithLogitsSum(logits, targets *G.Node) (*G.Node, error) {
	return G.ApplyOp(newBCEOp(shapeCopy(logits)), logits, targets)
}

// MSE is mean((pred - target)²), a scalar differentiated in pred only.
func MSE(pred, target *G.Node) (*G.Node, error) {
	return G.ApplyOp(newMSEOp(shapeCopy(pred)), pred, target)
}

// Act applies the activation kind to x (alpha: LeakyReLU's slope, 0 for
// the others, so that equal activations hash alike).
func Act(x *G.Node, kind ActKind, alpha float32) (*G.Node, error) {
	return G.ApplyOp(newActOp(kind, alpha, shapeCopy(x)), x)
}

// GroupNorm normalises x [N, C, ...] per sample over groups of C/groups
// channels, then scales by w [C] and shifts by b [C].
func GroupNorm(x, w, b *G.Node, groups int) (*G.Node, error) {
	return G.ApplyOp(newGNOp(gnForward, shapeCopy(x), groups, &normStats{}), x, w, b)
}

// BatchNorm2d normalises x [N, C, H, W] per channel with the batch's
// statistics (training, updating rs on every forward run) or rs's, then
// scales by w [C] and shifts by b [C].
func BatchNorm2d(x, w, b *G.Node, rs *RunningStats, training bool) (*G.Node, error) {
	return G.ApplyOp(newBNOp(gnForward, shapeCopy(x), training, rs, &normStats{}), x, w, b)
}

// Upsample repeats each pixel of x [N, C, H, W] into a factor x factor
// block (nearest neighbour).
func Upsample(x *G.Node, factor int) (*G.Node, error) {
	return G.ApplyOp(newUpOp(false, factor, shapeCopy(x)), x)
}

// SumPool sums x [N, C, H, W] over non-overlapping factor x factor blocks.
func SumPool(x *G.Node, factor int) (*G.Node, error) {
	s := x.Shape()
	return G.ApplyOp(newUpOp(true, factor, []int{s[0], s[1], s[2] / factor, s[3] / factor}), x)
}

// ConcatChannels joins xs [N, C_i, rest...] along axis 1.
func ConcatChannels(xs ...*G.Node) (*G.Node, error) {
	chans := make([]int, len(xs))
	for i, x := range xs {
		chans[i] = x.Shape()[1]
	}
	s0 := xs[0].Shape()
	return G.ApplyOp(newCatJoin(s0[0], chans, append([]int(nil), s0[2:]...)), xs...)
}
