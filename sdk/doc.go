// Package sdk is the contract between the pipeline host and model plugins.
//
// A plugin author implements [Plugin] (Describe and Load) and returns from Load a
// model value that implements one small interface per capability it has:
// [Encoder], [Generator], [Translator], [Denoiser]. A plugin that can train
// implements [Trainer] as well. The whole main() of a plugin is
//
//	func main() { sdk.Serve(&MyPlugin{}) }
//
// Serve runs the plugin out of process over hashicorp/go-plugin and gRPC; plugin
// authors never import go-plugin or gRPC themselves. Images cross the boundary as
// [Tensor] values in NCHW layout with little-endian bytes.
//
// On Linux the tensor bytes of a call do not travel in the gRPC messages but
// through memory the host shares with each plugin process (see
// [SharedMemory]; GENPIPE_SHM=off switches it off). For plugin authors this
// changes one rule: the input Data a model method receives is valid only
// until the method returns (see [Batch]).
//
// This package must not import gorgonia: a plugin author's dependency on it stays
// light, and the host runtime knows models only through it.
package sdk
