package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// outputFormat is the -o/--output flag of commands that print either for
// people (text) or for programs (json). It is a flag value (VarP checks
// that it satisfies pflag.Value), so a value
// outside the allowed ones is refused while the command line is parsed,
// with a message that names them, before any plugin starts.
type outputFormat string

// The output formats.
const (
	outputText outputFormat = "text"
	outputJSON outputFormat = "json"
)

var outputFormats = []outputFormat{outputText, outputJSON}

func (f *outputFormat) String() string { return string(*f) }

// Set accepts one of outputFormats.
func (f *outputFormat) Set(s string) error {
	for _, o := range outputFormats {
		if s == string(o) {
			*f = o
			return nil
		}
	}
	names := make([]string, len(outputFormats))
	for i, o := range outputFormats {
		names[i] = string(o)
	}
	return fmt.Errorf("expected %s", strings.Join(names, " or "))
}

// Type names the value in cobra's usage text.
func (f *outputFormat) Type() string { return "format" }

// addOutputFlag adds -o/--output to cmd, text by default.
func addOutputFlag(cmd *cobra.Command) *outputFormat {
	f := outputText
	cmd.Flags().VarP(&f, "output", "o", "output format: text or json")
	completeFlag(cmd, "output", func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, o := range outputFormats {
			if strings.HasPrefix(string(o), toComplete) {
				out = append(out, cobra.Completion(o))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
	return &f
}

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
