// Package sdk is the plugin author's contract: what a model plugin
// implements and receives, and [Serve], which runs it.
//
// A plugin author implements [Plugin] (Describe and Load) and returns from Load a
// model value that implements one small interface per capability it has:
// [Encoder], [Generator], [Translator], [Denoiser]. A plugin that can train
// implements [Trainer] as well. The whole main() of a plugin is
//
//	func main() { sdk.Serve(&MyPlugin{}) }
//
// Describe declares the plugin's capabilities, each with its parameters
// ([Param]: name, type, default, range, allowed values, pattern or
// [Format], doc), and its presets ([Preset]: shipped weights with their
// image and latent contracts, an output's size given as a function of the
// input's by a [Size] rule). The host validates pipeline files, prints docs and builds a
// JSON Schema from this one declaration, and Serve checks every call
// against it: a model receives [Params] already checked by [CheckParams],
// with every declared default filled in.
//
// Serve runs the plugin out of process over hashicorp/go-plugin and gRPC; plugin
// authors never import go-plugin or gRPC themselves. Images cross the boundary as
// [Tensor] values in NCHW layout with little-endian bytes.
//
// On Linux the tensor bytes of a call do not travel in the gRPC messages but
// through memory the host shares with each plugin process (GENPIPE_SHM=off
// switches it off). For plugin authors this changes one rule: the input
// Data a model method receives is valid only until the method returns (see
// [Batch]).
//
// Package sdk/sdktest is the conformance kit to run in a plugin's tests and
// sdk/safetensors reads and writes weights. The host's side of the
// contract is package sdk/client; the wire protocol is internal.
//
// This package must not import gorgonia: a plugin author's dependency on it stays
// light, and the host runtime knows models only through it.
package sdk
