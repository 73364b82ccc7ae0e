package layers

import "github.com/genpipe/genpipe/nn/ops"

// BatchNorm is a BatchNorm2d layer's state, as in PyTorch: the affine
// weight and bias, and the running_mean, running_var and
// num_batches_tracked buffers.
type BatchNorm struct {
	Weight, Bias, RunningMean, RunningVar, NumBatchesTracked *Param
	// Momentum is the running statistics' update rate (PyTorch: 0.1).
	Momentum float32
	// Eps is added to the variance (PyTorch: 1e-5).
	Eps float32
}

// NewBatchNorm2d adds a BatchNorm2d of c channels named prefix (e.g.
// "encoder.1") to ps with PyTorch's initial state: weight 1, bias 0,
// running mean 0, running variance 1, no batches tracked.
// num_batches_tracked is a float32 buffer of shape [1] (PyTorch: an int64
// scalar).
func NewBatchNorm2d(ps *Params, prefix string, c int) *BatchNorm {
	bn := &BatchNorm{
		Weight:            ps.Add(prefix+".weight", c),
		Bias:              ps.Add(prefix+".bias", c),
		RunningMean:       ps.AddBuffer(prefix+".running_mean", c),
		RunningVar:        ps.AddBuffer(prefix+".running_var", c),
		NumBatchesTracked: ps.AddCounter(prefix + ".num_batches_tracked"),
		Momentum:          0.1,
		Eps:               ops.NormEps,
	}
	for i := range bn.Weight.Data() {
		bn.Weight.Data()[i] = 1
		bn.RunningVar.Data()[i] = 1
	}
	return bn
}

// runningStats is the view of bn's buffers its op updates in place.
func (bn *BatchNorm) runningStats() *ops.RunningStats {
	rs := &ops.RunningStats{Name: bn.Weight.Name, Mean: bn.RunningMean.Data(), Var: bn.RunningVar.Data(), Momentum: bn.Momentum, Eps: bn.Eps}
	if bn.NumBatchesTracked != nil {
		rs.NumBatches = bn.NumBatchesTracked.Data()
	}
	return rs
}
