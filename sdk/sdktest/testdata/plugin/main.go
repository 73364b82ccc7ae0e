// Command plugin is the test plugin of package sdktest as a stand-alone
// program, to test sdktest.Config.Package (building a plugin with go build).
package main

import (
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

func main() { sdk.Serve(sdktest.NewTestPlugin("testplug")) }
