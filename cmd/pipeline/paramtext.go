package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/genpipe/genpipe/sdk"
)

// Parameter text: what `pipeline docs` (a Markdown table) and `pipeline
// plugins describe` (an aligned text table) print for declared parameters.
// Both go through paramCells, so a parameter reads the same in either; only
// the markup differs.

// paramStyle is the markup of one rendering.
type paramStyle struct {
	required string                  // the default column of a required parameter
	code     func(string) string     // marks up a literal value
	enumSep  string                  // between the allowed values
	rangeSep string                  // between the bounds of a range
	typ      func(*sdk.Param) string // the type column
}

var (
	// markdownStyle is the style of the pipeline file reference.
	markdownStyle = paramStyle{
		required: "required",
		code:     func(s string) string { return "`" + s + "`" },
		enumSep:  ", ",
		rangeSep: " .. ",
		typ: func(p *sdk.Param) string {
			if p.Type == sdk.List && p.Elem != nil && p.Elem.Type != "" {
				return "list of " + string(p.Elem.Type)
			}
			return string(p.Type)
		},
	}
	// textStyle is the style of a plugin's description.
	textStyle = paramStyle{
		required: "(required)",
		code:     func(s string) string { return s },
		enumSep:  "|",
		rangeSep: "..",
		typ: func(p *sdk.Param) string {
			if p.Type == sdk.List && p.Elem != nil {
				return "list of " + string(p.Elem.Type)
			}
			return string(p.Type)
		},
	}
)

// paramCells returns the type, default and allowed-values text of p.
func (s paramStyle) cells(p *sdk.Param) (typ, def, allowed string) {
	switch {
	case p.Required:
		def = s.required
	case p.Default != nil:
		def = s.code(fmt.Sprint(p.Default))
	}
	switch {
	case len(p.Enum) > 0:
		enum := make([]string, len(p.Enum))
		for i, e := range p.Enum {
			enum[i] = s.code(e)
		}
		allowed = strings.Join(enum, s.enumSep)
	case p.Min != nil || p.Max != nil:
		lo, hi := "", ""
		if p.Min != nil {
			lo = fmt.Sprint(*p.Min)
		}
		if p.Max != nil {
			hi = fmt.Sprint(*p.Max)
		}
		allowed = lo + s.rangeSep + hi
	}
	var forms []string
	if allowed != "" {
		forms = append(forms, allowed)
	}
	if p.Format != "" {
		forms = append(forms, p.Format.Text())
	}
	if p.Pattern != "" {
		forms = append(forms, "matching "+s.code(p.Pattern))
	}
	allowed = strings.Join(forms, "; ")
	return s.typ(p), def, allowed
}

// paramTable writes params, and the fields of object parameters as
// dotted keys, as a Markdown table followed by an empty line.
func paramTable(w io.Writer, params []sdk.Param) {
	fmt.Fprintln(w, "| key | type | default | allowed | description |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	var rows func(prefix string, ps []sdk.Param)
	rows = func(prefix string, ps []sdk.Param) {
		for i := range ps {
			p := &ps[i]
			typ, def, allowed := markdownStyle.cells(p)
			fmt.Fprintf(w, "| `%s%s` | %s | %s | %s | %s |\n", prefix, p.Name, typ, def, strings.ReplaceAll(allowed, "|", "\\|"), strings.ReplaceAll(p.Doc, "|", "\\|"))
			rows(prefix+p.Name+".", p.Fields)
		}
	}
	rows("", params)
	fmt.Fprintln(w)
}

// paramList writes params as an aligned text table indented by two
// spaces, the fields of object parameters indented under them.
func paramList(w io.Writer, params []sdk.Param) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PARAMETER\tTYPE\tDEFAULT\tALLOWED\tDOC")
	var rows func(indent string, ps []sdk.Param)
	rows = func(indent string, ps []sdk.Param) {
		for i := range ps {
			p := &ps[i]
			typ, def, allowed := textStyle.cells(p)
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\n", indent, p.Name, typ, def, allowed, p.Doc)
			rows(indent+"  ", p.Fields)
		}
	}
	rows("  ", params)
	tw.Flush()
}
