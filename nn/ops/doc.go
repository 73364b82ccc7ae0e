// Package ops owns the custom gorgonia ops of the model library and the
// kernels behind them: convolution and transposed convolution (implicit
// GEMM over nn/gemm), matrix multiply, bias and channel maps, fused
// activations, GroupNorm and BatchNorm, nearest upsampling and sum
// pooling, reflection padding, channel concatenation, dropout by a
// caller-filled mask, the BCE, MSE and L1 losses, and fused flow ops
// (channel slice, affine coupling and its log-determinant, Gaussian
// log-density).
//
// gorgonia's built-ins for these materialise whole-batch intermediates and
// allocate on every run; these keep their outputs across runs and each
// op's derivative is again one of these ops, so graphs stay twice
// differentiable (the WGAN-GP gradient penalty needs that). The functions
// of apply.go (and ReflectionPad2d, MulMask and L1 beside their ops) add
// one op to a graph; layers.Builder is the checked way to call them.
//
// Outputs are kept across runs, but not one buffer per node: PlanMemory
// (plan.go), called by layers.Compile, places every op output of a
// compiled program in one arena by its lifetime in the machine's fixed
// execution order, so values that are never alive together share memory.
//
// Tensor layouts: images NCHW float32, convolution weights
// [out, in, kh, kw] (transposed convolutions [in, out, kh, kw], as in
// PyTorch), dense weights [out, in].
package ops
