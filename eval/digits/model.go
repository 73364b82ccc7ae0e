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

// network is the classifier's layers, declared with PyTorch's default
// initialisation:
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
type network struct {
	ps       *layers.Params
	conv     [3]*layers.Conv2d
	fc1, fc2 *layers.Linear
}

func newNetwork(rng *nn.RNG) *network {
	n := &network{ps: layers.NewParams()}
	s := layers.NewScope(n.ps, rng)
	n.conv[0] = s.Conv2d("conv1", 1, 32, 3, 1, 1)
	n.conv[1] = s.Conv2d("conv2", 32, 64, 3, 2, 1)
	n.conv[2] = s.Conv2d("conv3", 64, 64, 3, 2, 1)
	n.fc1 = s.Linear("fc1", 64*7*7, FeatureDim)
	n.fc2 = s.Linear("fc2", FeatureDim, Classes)
	return n
}

// forward builds the network on x [N, 1, 28, 28], returning the features
// [N, 128] and the logits [N, 10].
func (net *network) forward(b *layers.Builder, x *G.Node) (feats, logits *G.Node) {
	h := x
	for _, c := range net.conv {
		h = b.ReLU(c.Forward(b, h))
	}
	h = b.Reshape(h, x.Shape()[0], 64*7*7)
	feats = b.ReLU(net.fc1.Forward(b, h))
	return feats, net.fc2.Forward(b, feats)
}

// inference is a compiled forward pass for one batch size.
type inference struct {
	prog *layers.Program
	x    []float32 // the input's storage
}

func newInference(net *network, n int) (*inference, error) {
	b := layers.NewBuilder()
	x := b.Input("x", n, 1, Size, Size)
	feats, logits := net.forward(b, x)
	prog, err := layers.Compile(b, nil, nil, feats, logits)
	if err != nil {
		return nil, fmt.Errorf("digits: build classifier graph: %w", err)
	}
	return &inference{prog: prog, x: layers.Data(x)}, nil
}
