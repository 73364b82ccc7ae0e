// Command serve runs the diffusion plugin as a stand-alone plugin process,
// for the conformance test (the pipeline binary serves it as a built-in).
package main

import (
	"github.com/genpipe/genpipe/plugins/diffusion"
	"github.com/genpipe/genpipe/sdk"
)

func main() { sdk.Serve(diffusion.New()) }
