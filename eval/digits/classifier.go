package digits

import (
	_ "embed"
	"fmt"
	"maps"
	"math"
	"sync"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// weights is the trained classifier, written by
// `go run ./eval/digits/cmd/train-digits`. Its metadata records the training
// configuration, the test accuracy and the reference Fréchet distances.
//
//go:embed weights.safetensors
var weights []byte

// Classifier is the trained MNIST digit classifier. It is safe for
// concurrent use; calls are serialised because they share one compiled
// graph and its buffers.
type Classifier struct {
	params *layers.Params
	meta   map[string]string
	mu     sync.Mutex
	inf    *inference
}

// Load returns the classifier with the embedded weights.
func Load() (*Classifier, error) {
	c, err := Decode(weights)
	if err != nil {
		return nil, fmt.Errorf("embedded weights: %w", err)
	}
	return c, nil
}

// Decode returns the classifier stored in a safetensors file written by
// Encode (or train-digits).
func Decode(b []byte) (*Classifier, error) {
	f, err := safetensors.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("digits: %w", err)
	}
	c, err := fromFile(f)
	if err != nil {
		return nil, fmt.Errorf("digits: %w", err)
	}
	return c, nil
}

// fromFile builds a classifier from weights stored as F32 or F16.
func fromFile(f *safetensors.File) (*Classifier, error) {
	wide := &safetensors.File{Metadata: f.Metadata}
	for _, t := range f.Tensors {
		d, err := t.Float32()
		if err != nil {
			return nil, err
		}
		wide.Tensors = append(wide.Tensors, safetensors.F32(t.Name, t.Shape, d))
	}
	net := newNetwork(nn.NewRNG(0))
	if err := net.ps.Load(wide); err != nil {
		return nil, err
	}
	return newClassifier(net, maps.Clone(f.Metadata))
}

func newClassifier(net *network, meta map[string]string) (*Classifier, error) {
	inf, err := newInference(net, batchSize)
	if err != nil {
		return nil, err
	}
	return &Classifier{params: net.ps, meta: meta, inf: inf}, nil
}

// Metadata returns a copy of the weights' metadata: "train_config" (JSON),
// "test_accuracy", "reference_fd" (JSON) and the like.
func (c *Classifier) Metadata() map[string]string { return maps.Clone(c.meta) }

// Classify runs the classifier on n digits, images holding n x 1 x 28 x 28
// values in [0,1] (0 is background, as in MNIST; a generator with tanh
// outputs must map (x+1)/2 first). It returns each digit's class
// probabilities and its 128 feature activations (the ReLU layer before
// the logits). Non-finite pixels are an error, since they would silently
// turn into NaN probabilities.
func (c *Classifier) Classify(images []float32, n int) (probs [][Classes]float64, feats [][]float64, err error) {
	if n < 0 || len(images) != n*Pixels {
		return nil, nil, fmt.Errorf("digits: classify: %d values for %d digits of %d pixels", len(images), n, Pixels)
	}
	for i, v := range images {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, nil, fmt.Errorf("digits: classify: digit %d pixel %d is %v", i/Pixels, i%Pixels, v)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	probs = make([][Classes]float64, n)
	feats = make([][]float64, n)
	flat := make([]float64, n*FeatureDim)
	for start := 0; start < n; start += batchSize {
		m := min(batchSize, n-start)
		copy(c.inf.x, images[start*Pixels:(start+m)*Pixels])
		clear(c.inf.x[m*Pixels:])
		if err := c.inf.prog.Run(); err != nil {
			return nil, nil, fmt.Errorf("digits: classify digits %d-%d: %w", start, start+m-1, err)
		}
		f, l := c.inf.prog.Output(0), c.inf.prog.Output(1)
		for i := 0; i < m; i++ {
			row := flat[(start+i)*FeatureDim : (start+i+1)*FeatureDim]
			for j := range row {
				row[j] = float64(f[i*FeatureDim+j])
			}
			feats[start+i] = row
			probs[start+i] = softmax(l[i*Classes : (i+1)*Classes])
		}
	}
	return probs, feats, nil
}

func softmax(l []float32) [Classes]float64 {
	lse := logSumExp(l)
	var p [Classes]float64
	for j, v := range l {
		p[j] = math.Exp(float64(v) - lse)
	}
	return p
}

// Accuracy is the fraction of digits whose most probable class is their
// label.
func Accuracy(c *Classifier, images []float32, labels []int) (float64, error) {
	probs, _, err := c.Classify(images, len(labels))
	if err != nil {
		return 0, err
	}
	return LabelAgreement(probs, labels), nil
}

// argmax is the most probable class (the lowest on a tie).
func argmax(p [Classes]float64) int {
	best := 0
	for j, v := range p {
		if v > p[best] {
			best = j
		}
	}
	return best
}
