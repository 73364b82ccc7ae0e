// Package nn is the root of the model library shared by the built-in
// model families, and owns what every part of it uses: the seeded RNG
// (weight initialisation, training noise, sampling) and latent
// interpolation. The library is split by concern:
//
//   - nn/gemm: the blocked SGEMM with assembly kernels;
//   - nn/ops: the custom gorgonia ops and their kernels (convolution,
//     matmul, norms, activations, resampling, losses);
//   - nn/layers: parameters with PyTorch state_dict names, the graph
//     Builder and compiled Program, and layers that declare and
//     initialise their parameters under a Scope;
//   - nn/optim: Adam and RMSProp with state that checkpoints save;
//   - nn/train: the training loop, checkpoints and weight files, the one
//     part that knows the plugin SDK.
//
// Models are gorgonia expression graphs; a family's plugin builds them
// from layers, trains them with optim and train, and ships safetensors
// weights whose names match the family's PyTorch twin.
package nn
