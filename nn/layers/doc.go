// Package layers owns a model's parameters and how a graph is built from
// them: Params (the state_dict: named tensors in PyTorch's layout and
// order, to and from safetensors), Builder (one expression graph over the
// ops of nn/ops, with shape checks and sticky errors that name the layer),
// Program (a compiled graph run many times), and the layers — Conv2d,
// ConvTranspose2d, Linear, BatchNorm2d, GroupNorm, InstanceNorm2d — that
// a model declares
// under a Scope, each creating and initialising its own parameters, so a
// parameter's name is written once.
package layers
