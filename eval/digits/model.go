package digits

import (
	"fmt"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	G "gorgonia.org/gorgonia"
)

// Image geometry and output sizes of the classifier.
const (
	// Size is the height and width of an input digit.
	Size = 28
	// Pixels is the number of values in one input digit (1 x 28 x 28).
	Pixels = Size * Size
	// Classes is the number of digit classes.
	Classes = 10
	// FeatureDim is the length of a feature vector: the 128 ReLU units
	// before the logits, which FrechetDistance compares.
	FeatureDim = 128
	// batchSize is the batch Classify runs: one compiled graph serves every
	// call, and a last partial batch is padded with blank digits.
	batchSize = 64
)

// newParams declares the network with PyTorch's default initialisation:
//
//	conv1: Conv2d(1, 32, 3, stride 1, pad 1)  ReLU   -> 32 x 28 x 28
//	conv2: Conv2d(32, 64, 3, stride 2, pad 1) ReLU   -> 64 x 14 x 14
//	conv3: Conv2d(64, 64, 3, stride 2, pad 1) ReLU   -> 64 x 7 x 7
//	fc1:   Linear(3136, 128)                  ReLU   -> features
//	fc2:   Linear(128, 10)                           -> logits
//
// Strided convolutions stand in for pooling (nn has no max pooling), and
// there is no normalisation layer, so inference depends on nothing but the
// weights.
func newParams(rng *nn.RNG) *layers.Params {
	ps := layers.NewParams()
	conv := func(name string, out, in int) {
		rng.KaimingUniform(ps.Add(name+".weight", out, in, 3, 3).Data(), in*9)
		rng.KaimingUniform(ps.Add(name+".bias", out).Data(), in*9)
	}
	linear := func(name string, out, in int) {
		rng.KaimingUniform(ps.Add(name+".weight", out, in).Data(), in)
		rng.KaimingUniform(ps.Add(name+".bias", out).Data(), in)
	}
	conv("conv1", 32, 1)
	conv("conv2", 64, 32)
	conv("conv3", 64, 64)
	linear("fc1", FeatureDim, 64*7*7)
	linear("fc2", Classes, FeatureDim)
	return ps
}

// forward builds the network on x [N, 1, 28, 28], returning the features
// [N, 128] and the logits [N, 10].
func forward(b *layers.Builder, ps *layers.Params, x *G.Node) (feats, logits *G.Node) {
	p := ps.Get
	n := x.Shape()[0]
	h := b.ReLU(b.Conv2d(x, p("conv1.weight"), p("conv1.bias"), 1, 1))
	h = b.ReLU(b.Conv2d(h, p("conv2.weight"), p("conv2.bias"), 2, 1))
	h = b.ReLU(b.Conv2d(h, p("conv3.weight"), p("conv3.bias"), 2, 1))
	h = b.Reshape(h, n, 64*7*7)
	feats = b.ReLU(b.Linear(h, p("fc1.weight"), p("fc1.bias")))
	logits = b.Linear(feats, p("fc2.weight"), p("fc2.bias"))
	return feats, logits
}

// inference is a compiled forward pass for one batch size.
type inference struct {
	prog *layers.Program
	x    []float32 // the input's storage
}

func newInference(ps *layers.Params, n int) (*inference, error) {
	b := layers.NewBuilder()
	x := b.Input("x", n, 1, Size, Size)
	feats, logits := forward(b, ps, x)
	prog, err := layers.Compile(b, nil, nil, feats, logits)
	if err != nil {
		return nil, fmt.Errorf("digits: build classifier graph: %w", err)
	}
	return &inference{prog: prog, x: layers.Data(x)}, nil
}
