package stages

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/genpipe/genpipe/internal/suggest"
)

// nameTemplate is a parsed save file-name template. Fields: {name},
// {index}, {label}, {stage}; index and label take a zero-padding width as
// {index:05}. An item without a label renders {label} as "none"; {stage} is
// the id of the stage that last made or changed the item (its last
// provenance step), else SaveOptions.Stage.
type nameTemplate struct {
	parts []tmplPart
}

type tmplPart struct {
	lit   string
	field string // "" for a literal
	width int
}

type tmplValues struct {
	name  string
	index int
	label int
	stage string
}

func parseTemplate(s string) (*nameTemplate, error) {
	t := &nameTemplate{}
	for len(s) > 0 {
		open := strings.IndexByte(s, '{')
		if cl := strings.IndexByte(s, '}'); cl >= 0 && (open < 0 || cl < open) {
			return nil, fmt.Errorf("unmatched \"}\" in template")
		}
		if open < 0 {
			t.parts = append(t.parts, tmplPart{lit: s})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, tmplPart{lit: s[:open]})
		}
		cl := strings.IndexByte(s[open:], '}')
		if cl < 0 {
			return nil, fmt.Errorf("unclosed \"{\" in template")
		}
		f := s[open+1 : open+cl]
		p := tmplPart{field: f}
		if i := strings.IndexByte(f, ':'); i >= 0 {
			p.field = f[:i]
			spec := f[i+1:]
			w, err := strconv.Atoi(spec)
			if err != nil || w < 1 || w > 20 || !strings.HasPrefix(spec, "0") {
				return nil, &hintError{fmt.Sprintf("{%s}: bad width %q", f, spec), fmt.Sprintf("a zero-padded width such as {%s:05}", p.field)}
			}
			if p.field != "index" && p.field != "label" {
				return nil, fmt.Errorf("{%s}: only {index} and {label} take a width", f)
			}
			p.width = w
		}
		switch p.field {
		case "name", "index", "label", "stage":
		default:
			h := suggest.DidYouMean(p.field, []string{"name", "index", "label", "stage"})
			if h == "" {
				h = "fields: {name}, {index}, {index:05}, {label}, {stage}"
			}
			return nil, &hintError{fmt.Sprintf("unknown field {%s}", p.field), h}
		}
		t.parts = append(t.parts, p)
		s = s[open+cl+1:]
	}
	if len(t.parts) == 0 {
		return nil, fmt.Errorf("empty template")
	}
	return t, nil
}

// render fills in v and returns a clean slash-separated relative path, or an
// error when it is empty or leaves the save folder.
func (t *nameTemplate) render(v tmplValues) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.field {
		case "":
			b.WriteString(p.lit)
		case "name":
			b.WriteString(v.name)
		case "stage":
			b.WriteString(v.stage)
		case "index":
			b.WriteString(pad(v.index, p.width))
		case "label":
			if v.label < 0 {
				b.WriteString("none")
			} else {
				b.WriteString(pad(v.label, p.width))
			}
		}
	}
	return cleanRel(b.String())
}

func pad(n, width int) string {
	return fmt.Sprintf("%0*d", width, n)
}

// cleanRel cleans a relative slash path and refuses one that is empty,
// absolute or goes up out of its folder.
func cleanRel(s string) (string, error) {
	s = strings.ReplaceAll(s, "\\", "/")
	if strings.HasPrefix(s, "/") || len(s) >= 2 && s[1] == ':' {
		return "", fmt.Errorf("%q is an absolute path", s)
	}
	c := path.Clean(s)
	if c == "." || c == "" || strings.HasSuffix(s, "/") {
		return "", fmt.Errorf("%q names no file", s)
	}
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%q leaves the output folder", s)
	}
	return c, nil
}

// hintError is an error with a suggestion for the fix, which CheckSave
// passes on as the ParamError's Hint.
type hintError struct{ msg, hint string }

func (e *hintError) Error() string { return e.msg + " (" + e.hint + ")" }
