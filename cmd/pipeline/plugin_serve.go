package main

import (
	"fmt"

	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/client"
	"github.com/spf13/cobra"
)

// newPluginCmd is the hidden command the host re-executes itself with to run
// a built-in plugin in its own process. It also carries `plugin new`, the
// same command as the documented `plugins new`, for those who type the
// singular.
func newPluginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "plugin",
		Short:  "Internal: serve a built-in plugin",
		Hidden: true,
	}
	cmd.AddCommand(newPluginsNewCmd(), &cobra.Command{
		Use:  "serve NAME",
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			factory, ok := pluginhost.Builtin(args[0])
			if !ok {
				return &exitError{exitInvalid, fmt.Errorf("plugin serve: no built-in plugin %q", args[0])}
			}
			sdk.Serve(factory())
			return nil
		},
	})
	return cmd
}

func protocolVersion() int { return int(client.ProtocolVersion) }
