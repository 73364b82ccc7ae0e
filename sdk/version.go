package sdk

import (
	"runtime/debug"
	"sync"
)

// modulePath is the module that holds this package.
const modulePath = "github.com/genpipe/genpipe"

var sdkVersion = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if bi.Main.Path == modulePath {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath {
			if d.Replace != nil {
				return d.Version + " (replaced by " + d.Replace.Path + ")"
			}
			return d.Version
		}
	}
	return "unknown"
})

// SDKVersion is the version of the sdk module this binary was built with, as
// recorded in its build info ("(devel)" inside the sdk's own module).
func SDKVersion() string { return sdkVersion() }
