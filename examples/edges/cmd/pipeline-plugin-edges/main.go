// Command pipeline-plugin-edges serves the edges plugin to the pipeline host.
// The host finds it by its file name (pipeline-plugin-NAME) on
// PIPELINE_PLUGIN_PATH and starts it itself; it is not meant to be run by hand.
package main

import (
	"github.com/genpipe/genpipe/examples/edges"
	"github.com/genpipe/genpipe/sdk"
)

func main() { sdk.Serve(edges.New()) }
