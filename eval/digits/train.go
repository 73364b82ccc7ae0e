package digits

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strconv"
	"time"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/nn/optim"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// TrainConfig is how the classifier is trained; it is recorded in the
// weights' metadata ("train_config").
type TrainConfig struct {
	// Seed seeds the initialisation and the shuffling.
	Seed uint64 `json:"seed"`
	// Epochs is the number of passes over the training digits.
	Epochs int `json:"epochs"`
	// Batch is the minibatch size.
	Batch int `json:"batch"`
	// LR is Adam's learning rate in the first epoch; each later epoch
	// multiplies it by LRDecay.
	LR float64 `json:"lr"`
	// LRDecay is the per-epoch learning-rate factor.
	LRDecay float64 `json:"lr_decay"`
	// MaxShift is the augmentation: each training digit is translated by
	// a uniform whole number of pixels in [-MaxShift, MaxShift] along each
	// axis (zero fill). Without it the network stops near 98.9% on the
	// test set while its training accuracy keeps rising.
	MaxShift int `json:"max_shift"`
}

// DefaultTrainConfig is the configuration of the embedded weights.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{Seed: 1, Epochs: 6, Batch: 64, LR: 1e-3, LRDecay: 0.6, MaxShift: 2}
}

// Train trains a classifier from scratch on the training digits (Adam,
// softmax cross-entropy on one-hot labels, randomly shifted digits,
// reshuffled every epoch; a last partial batch is dropped), reporting progress through logf and the test
// accuracy after every epoch. The test digits are only measured, never
// used to choose anything: the result is the last epoch's weights. Its
// metadata holds the configuration, the training time and the test
// accuracy of the weights as stored (rounded to F16, see Encode).
func Train(cfg TrainConfig, trainX []float32, trainY []int, testX []float32, testY []int, logf func(format string, args ...any)) (*Classifier, error) {
	if cfg.Epochs < 1 || cfg.Batch < 1 || cfg.LR <= 0 || cfg.LRDecay <= 0 || cfg.MaxShift < 0 || cfg.MaxShift >= Size {
		return nil, fmt.Errorf("digits: train config %+v: epochs, batch, lr and lr_decay must be positive, max_shift in [0, 28)", cfg)
	}
	if len(trainX) != len(trainY)*Pixels || len(testX) != len(testY)*Pixels || len(trainY) < cfg.Batch {
		return nil, fmt.Errorf("digits: train: %d training values for %d labels, %d test values for %d labels, batch %d", len(trainX), len(trainY), len(testX), len(testY), cfg.Batch)
	}
	start := time.Now()
	rng := nn.NewRNG(cfg.Seed)
	net := newNetwork(rng)
	ps := net.ps
	b := layers.NewBuilder()
	xn := b.Input("x", cfg.Batch, 1, Size, Size)
	tn := b.Input("target", cfg.Batch, Classes)
	_, logits := net.forward(b, xn)
	loss := SoftmaxCrossEntropy(b, logits, tn)
	prog, err := layers.Compile(b, loss, ps.Trainable(), logits)
	if err != nil {
		return nil, fmt.Errorf("digits: build training graph: %w", err)
	}
	defer prog.Close()
	x, t := layers.Data(xn), layers.Data(tn)
	trainable := ps.Trainable()
	grads := make([][]float32, len(trainable))
	opt := optim.NewAdam(cfg.LR)
	order := make([]int, len(trainY))
	for i := range order {
		order[i] = i
	}
	eval, err := newClassifier(net, nil)
	if err != nil {
		return nil, err
	}
	steps := len(trainY) / cfg.Batch
	var acc float64
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		opt.LR = cfg.LR * math.Pow(cfg.LRDecay, float64(epoch-1))
		for i := len(order) - 1; i > 0; i-- {
			j := rng.IntN(i + 1)
			order[i], order[j] = order[j], order[i]
		}
		var lossSum float64
		var correct int
		for s := 0; s < steps; s++ {
			clear(t)
			for i := 0; i < cfg.Batch; i++ {
				k := order[s*cfg.Batch+i]
				dr, dc := rng.IntN(2*cfg.MaxShift+1)-cfg.MaxShift, rng.IntN(2*cfg.MaxShift+1)-cfg.MaxShift
				shiftInto(x[i*Pixels:(i+1)*Pixels], trainX[k*Pixels:(k+1)*Pixels], dr, dc)
				t[i*Classes+trainY[k]] = 1
			}
			if err := prog.Run(); err != nil {
				return nil, fmt.Errorf("digits: epoch %d step %d: %w", epoch, s+1, err)
			}
			l := prog.Scalar(0)
			if math.IsNaN(l) || math.IsInf(l, 0) {
				return nil, fmt.Errorf("digits: epoch %d step %d: loss is %v", epoch, s+1, l)
			}
			lossSum += l
			out := prog.Output(1)
			for i := 0; i < cfg.Batch; i++ {
				if argmax(softmax(out[i*Classes:(i+1)*Classes])) == trainY[order[s*cfg.Batch+i]] {
					correct++
				}
			}
			for i := range trainable {
				grads[i] = prog.Grad(i)
			}
			opt.Step(trainable, grads)
			if (s+1)%200 == 0 {
				logf("epoch %d step %d/%d: loss %.4f (%.0fs)", epoch, s+1, steps, lossSum/float64(s+1), time.Since(start).Seconds())
			}
		}
		if acc, err = Accuracy(eval, testX, testY); err != nil {
			return nil, err
		}
		logf("epoch %d: lr %.2g, train loss %.4f, train accuracy %.4f, test accuracy %.4f (%.0fs)", epoch, opt.LR, lossSum/float64(steps), float64(correct)/float64(steps*cfg.Batch), acc, time.Since(start).Seconds())
	}
	elapsed := time.Since(start)
	// Measure what will be shipped: the weights rounded to F16.
	c, err := fromFile(&safetensors.File{Tensors: halfTensors(ps)})
	if err != nil {
		return nil, err
	}
	stored, err := Accuracy(c, testX, testY)
	if err != nil {
		return nil, err
	}
	logf("test accuracy %.4f in float32, %.4f with F16 weights", acc, stored)
	cj, _ := json.Marshal(cfg)
	c.meta = map[string]string{
		"model":              "digits-cnn",
		"architecture":       "conv1 1-32 3x3 s1, conv2 32-64 3x3 s2, conv3 64-64 3x3 s2, fc1 3136-128 (features), fc2 128-10; ReLU after all but fc2",
		"train_config":       string(cj),
		"train_digits":       strconv.Itoa(len(trainY)),
		"train_seconds":      strconv.FormatFloat(elapsed.Seconds(), 'f', 0, 64),
		"test_accuracy":      strconv.FormatFloat(stored, 'f', 4, 64),
		"test_accuracy_f32":  strconv.FormatFloat(acc, 'f', 4, 64),
		"trained_with":       "go run ./eval/digits/cmd/train-digits",
		"weights_dtype_note": "F16, widened to float32 on load",
	}
	return c, nil
}

// Encode returns the classifier as a safetensors file with F16 weights
// and its metadata plus extra (which wins on a clash).
func (c *Classifier) Encode(extra map[string]string) ([]byte, error) {
	meta := maps.Clone(c.meta)
	if meta == nil {
		meta = map[string]string{}
	}
	maps.Copy(meta, extra)
	return (&safetensors.File{Metadata: meta, Tensors: halfTensors(c.params)}).Encode()
}

// halfTensors returns the parameters as F16 tensors.
func halfTensors(ps *layers.Params) []safetensors.Tensor {
	var out []safetensors.Tensor
	for _, p := range ps.All() {
		d := p.Data()
		b := make([]byte, 2*len(d))
		for i, v := range d {
			binary.LittleEndian.PutUint16(b[2*i:], float32ToHalf(v))
		}
		out = append(out, safetensors.Tensor{Name: p.Name, DType: "F16", Shape: append([]int(nil), p.Shape()...), Data: b})
	}
	return out
}
