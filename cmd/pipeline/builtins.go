package main

import (
	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/plugins/classic"
	"github.com/genpipe/genpipe/plugins/cyclegan"
	"github.com/genpipe/genpipe/plugins/diffusion"
	"github.com/genpipe/genpipe/plugins/flow"
	"github.com/genpipe/genpipe/plugins/gan"
	"github.com/genpipe/genpipe/plugins/vae"
)

// The built-in model families. They are linked into this binary but still run
// out of process: the host re-executes itself as `pipeline plugin serve NAME`.
func init() {
	pluginhost.RegisterBuiltin("classic", classic.New)
	pluginhost.RegisterBuiltin("cyclegan", cyclegan.New)
	pluginhost.RegisterBuiltin("diffusion", diffusion.New)
	pluginhost.RegisterBuiltin("flow", flow.New)
	pluginhost.RegisterBuiltin("gan", gan.New)
	pluginhost.RegisterBuiltin("vae", vae.New)
}
