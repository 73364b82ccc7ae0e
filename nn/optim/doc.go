// Package optim owns the optimizers that update layers.Params from their
// gradients: Adam (and AdamW) and RMSProp with PyTorch's update rules,
// whose state is ordinary tensors so that a checkpoint saves it and a
// resumed run continues exactly.
package optim
