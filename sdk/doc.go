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
// This package must not import gorgonia: a plugin author's dependency on it stays
// light, and the host runtime knows models only through it.
package sdk
