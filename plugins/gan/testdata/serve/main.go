// Command serve runs the gan plugin as a stand-alone plugin process, for
// the conformance test (the pipeline binary serves it as a built-in).
package main

import (
	"github.com/genpipe/genpipe/plugins/gan"
	"github.com/genpipe/genpipe/sdk"
)

func main() { sdk.Serve(gan.New()) }
