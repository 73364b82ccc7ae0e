package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/sdk"
	"github.com/spf13/cobra"
)

func newPluginsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List, describe and create the plugins pipeline can run",
		Example: `  # Every plugin and where it comes from, then one's parameters and presets
  pipeline plugins list
  pipeline plugins describe gan`,
	}
	cmd.AddCommand(newPluginsListCmd(), newPluginsDescribeCmd(), newPluginsNewCmd())
	return cmd
}

func newPluginsListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List built-in and discovered plugins and where each comes from",
		Long: `list shows every plugin: the built-ins compiled into pipeline and the
executables named pipeline-plugin-NAME found in the directories of
PIPELINE_PLUGIN_PATH, then ` + pluginhost.DefaultDir() + `.

With -o json it starts each plugin to describe it and prints a JSON array,
one object per plugin: name, kind, version, path, overrides, capabilities,
presets (with their input/output contracts), or error when the plugin
could not be described.`,
		Example: `  # The built-ins and the plugins on the search path
  pipeline plugins list

  # Also look for pipeline-plugin-NAME executables in bin/
  PIPELINE_PLUGIN_PATH=bin pipeline plugins list

  # Every plugin's capabilities and presets, for a script
  pipeline plugins list -o json`,
		Args:              noArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	format := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		m, err := newPluginHost(cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		defer m.Close()
		infos, err := m.List()
		if err != nil {
			return err
		}
		if *format == outputJSON {
			return writeJSON(cmd.OutOrStdout(), listEntries(m, infos))
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tKIND\tLOCATION")
		for _, i := range infos {
			loc := displayPath(i.Location)
			if i.Kind == pluginhost.KindBuiltin {
				loc = "compiled in (" + loc + " " + strings.Join(i.Args, " ") + ")"
			}
			if i.Overrides {
				loc += " (overrides the built-in)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", i.Name, i.Kind, loc)
		}
		tw.Flush()
		fmt.Fprintf(cmd.OutOrStdout(), "\nsearch path: %s\n", strings.Join(displayPaths(m.Dirs()), ", "))
		return nil
	}
	return cmd
}

// pluginEntry is one element of plugins list -o json.
type pluginEntry struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Version   string `json:"version,omitempty"`
	Path      string `json:"path"`
	Overrides bool   `json:"overrides,omitempty"`
	// Capabilities are the capability names; Presets are as the plugin
	// describes them.
	Capabilities []string     `json:"capabilities"`
	Presets      []sdk.Preset `json:"presets"`
	// Error says why the plugin could not be described; the listing goes
	// on, so one broken executable on the path does not hide the others.
	Error string `json:"error,omitempty"`
}

// listEntries describes every listed plugin. Paths are absolute: the
// output is for programs, which should not have to know the working
// folder.
func listEntries(m *pluginhost.Host, infos []pluginhost.Info) []pluginEntry {
	out := make([]pluginEntry, 0, len(infos))
	for _, i := range infos {
		e := pluginEntry{Name: i.Name, Kind: string(i.Kind), Path: i.Location, Overrides: i.Overrides, Capabilities: []string{}, Presets: []sdk.Preset{}}
		p, err := m.Open(context.Background(), pluginhost.Ref{Name: i.Name})
		if err != nil {
			e.Error = err.Error()
			out = append(out, e)
			continue
		}
		d := p.Description()
		e.Version = d.Version
		for _, c := range d.Capabilities {
			e.Capabilities = append(e.Capabilities, string(c.Name))
		}
		if d.Presets != nil {
			e.Presets = d.Presets
		}
		out = append(out, e)
	}
	return out
}

func newPluginsDescribeCmd() *cobra.Command {
	var path, sha string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a plugin's capabilities, every parameter and its shipped presets",
		Example: `  # A built-in plugin: its capabilities, parameters and presets
  pipeline plugins describe vae

  # The same as JSON, for tools
  pipeline plugins describe --json gan

  # An external plugin, found on the search path or given by its executable
  PIPELINE_PLUGIN_PATH=bin pipeline plugins describe edges
  pipeline plugins describe --path bin/pipeline-plugin-edges edges`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completePlugin,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := newPluginHost(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer m.Close()
			p, err := m.Open(context.Background(), pluginhost.Ref{Name: args[0], Path: path, SHA256: sha})
			if err != nil {
				return err
			}
			d := p.Description()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(d)
			}
			info := p.Info()
			writeDescription(cmd.OutOrStdout(), &d, fmt.Sprintf("%s (%s)", displayPath(info.Location), info.Kind))
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "path", "", "describe the plugin executable at this path")
	cmd.Flags().StringVar(&sha, "sha256", "", "refuse the executable unless its sha256 is this")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the description as JSON")
	return cmd
}

// writeDescription renders a description for people; the same text is the
// plugin reference in the docs.
func writeDescription(w io.Writer, d *sdk.Description, from string) {
	fmt.Fprintf(w, "%s %s\n", d.Name, d.Version)
	if from != "" {
		fmt.Fprintf(w, "  from: %s\n", from)
	}
	if d.Doc != "" {
		fmt.Fprintf(w, "  %s\n", d.Doc)
	}
	if d.BatchSize > 0 {
		fmt.Fprintf(w, "  preferred batch: %d\n", d.BatchSize)
	}
	for _, c := range d.Capabilities {
		fmt.Fprintf(w, "\ncapability %s", c.Name)
		if c.Doc != "" {
			fmt.Fprintf(w, ": %s", c.Doc)
		}
		fmt.Fprintln(w)
		paramList(w, c.Params)
		if len(c.Scores) > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  SCORE (per item; keep: and save's manifest use them)\tDOC")
			for _, sc := range c.Scores {
				fmt.Fprintf(tw, "  %s\t%s\n", sc.Name, sc.Doc)
			}
			tw.Flush()
		}
	}
	if len(d.Presets) > 0 {
		fmt.Fprintln(w, "\npresets")
	}
	for _, p := range d.Presets {
		def := ""
		if p.Default {
			def = " (default)"
		}
		caps := make([]string, len(p.Capabilities))
		for i, c := range p.Capabilities {
			caps[i] = string(c)
		}
		fmt.Fprintf(w, "  %s%s: %s\n", p.Name, def, strings.Join(caps, ", "))
		if p.Doc != "" {
			fmt.Fprintf(w, "    %s\n", p.Doc)
		}
		if p.Input != nil {
			exact := ""
			if p.ExactInput {
				exact = " (taken as it is: not conformed unless a stage sets conform)"
			}
			fmt.Fprintf(w, "    input:  %s%s\n", imageSpecText(p.Input, "any"), exact)
		}
		if p.Output != nil {
			fmt.Fprintf(w, "    output: %s\n", imageSpecText(p.Output, "same as input"))
		}
		if p.Latent != nil {
			fmt.Fprintf(w, "    latent: %d values in space %q\n", p.Latent.Dim, p.Latent.Space)
		}
		if l := p.LatentData; l != nil {
			fmt.Fprintf(w, "    data:   latents, %d values in space %q (generate emits them, train reads them)\n", l.Dim, l.Space)
		}
		if p.Classes > 0 {
			fmt.Fprintf(w, "    labels: 0..%d\n", p.Classes-1)
		}
		if p.Weights != "" {
			fmt.Fprintf(w, "    weights: %s\n", p.Weights)
		}
	}
}

func imageSpecText(s *sdk.ImageSpec, zero string) string {
	size := zero + " size"
	switch z := s.SizeRule(); {
	case s.Width > 0 && s.Height > 0:
		size = fmt.Sprintf("%dx%d", s.Width, s.Height)
	case z.Rule == sdk.SizeScale:
		size = "input size " + strings.TrimPrefix(z.String(), "scale ")
	case z.Rule == sdk.SizeAny:
		size = "size known only when it runs"
	}
	ch := zero + " channels"
	if s.Channels > 0 {
		ch = fmt.Sprintf("%d channel(s)", s.Channels)
	}
	dt := s.DType
	if dt == 0 {
		dt = sdk.Uint8
	}
	rng := "0..255"
	if dt == sdk.Float32 {
		rng = fmt.Sprintf("%g..%g", s.Min, s.Max)
	}
	return fmt.Sprintf("%s, %s, %s in %s", size, ch, dt, rng)
}

// displayPath shortens a path for people to read: relative to the working
// folder when it is inside it, "~/..." inside the home folder, otherwise
// as it is. Listings then read the same on every machine (the README shows
// them), and a path shown can still be pasted into a shell.
func displayPath(p string) string {
	if !filepath.IsAbs(p) {
		return p
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, ok := pathWithin(wd, p); ok {
			return rel
		}
	}
	if home, err := os.UserHomeDir(); err == nil && home != "/" {
		if rel, ok := pathWithin(home, p); ok {
			return filepath.Join("~", rel)
		}
	}
	return p
}

// pathWithin returns p relative to dir when p is inside dir, as given or
// with symlinks resolved: the working folder is the shell's $PWD, often
// reached through a symlink (macOS's /tmp, a linked ~/src), while the
// built-ins' location is the executable's resolved path.
func pathWithin(dir, p string) (string, bool) {
	inside := func(dir, p string) (string, bool) {
		rel, err := filepath.Rel(dir, p)
		return rel, err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
	}
	if rel, ok := inside(dir, p); ok {
		return rel, true
	}
	rdir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", false
	}
	if rp, err := filepath.EvalSymlinks(p); err == nil {
		p = rp // a folder that does not exist yet is compared as given
	}
	return inside(rdir, p)
}

func displayPaths(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = displayPath(p)
	}
	return out
}
