// Command serve runs the vae plugin as a stand-alone plugin process, for
// the conformance test (the pipeline binary serves it as a built-in).
package main

import (
	"github.com/genpipe/genpipe/plugins/vae"
	"github.com/genpipe/genpipe/sdk"
)

func main() { sdk.Serve(vae.New()) }
