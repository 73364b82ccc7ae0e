// Package nn is the model layer shared by the built-in model families: layers
// whose parameters carry PyTorch state_dict names ("encoder.0.weight"),
// safetensors weights, Adam with exportable state, a seeded RNG, checkpoints,
// and the fast kernels (convolution, transposed convolution, bias, losses)
// that make training on a 2-core CPU practical.
//
// Models are gorgonia expression graphs. The hot operations are custom
// gorgonia ops ([Conv2d], [ConvTranspose2d] and friends) whose kernels run a
// per-image im2col into pooled buffers and a blocked SGEMM, instead of
// gorgonia's built-ins that materialise the whole batch's im2col matrix and
// copy through transposes. Each op's derivative is again one of these ops,
// so graphs stay twice differentiable (the WGAN-GP gradient penalty needs
// that).
//
// Tensor layouts are explicit: images are NCHW float32, convolution weights
// are [out, in, kh, kw] (transposed convolutions [in, out, kh, kw], as in
// PyTorch), dense weights are [out, in] and compute x·Wᵀ + b.
package nn
