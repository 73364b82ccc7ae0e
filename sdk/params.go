package sdk

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/genpipe/genpipe/internal/suggest"
)

// Params holds validated parameter values by name. Values use these Go types:
// String -> string, Int -> int, Float -> float64, Bool -> bool,
// List -> []any, Object -> map[string]any.
//
// The Params a plugin receives (LoadRequest.Params, TrainRequest.Params)
// went through [CheckParams] against the capability's declared [Param]s, so
// every declared parameter with a Default (or Required) is present. The
// typed getters below read such a parameter; asked for a name that is not
// there (one the capability never declared, a typo, or an optional
// parameter without a Default) they panic, naming it, instead of handing
// back a zero value that looks like a setting. Read an optional parameter
// without a Default with [Params.Lookup] or [Params.Has].
type Params map[string]any

// Has reports whether the parameter name has a value.
func (p Params) Has(name string) bool { _, ok := p[name]; return ok }

// Lookup returns the value of the parameter name and whether it has one.
func (p Params) Lookup(name string) (any, bool) { v, ok := p[name]; return v, ok }

// must returns the value of name, or panics when there is none.
func (p Params) must(getter, name string) any {
	v, ok := p[name]
	if !ok {
		panic(fmt.Sprintf("sdk: Params.%s(%q): no such parameter (declare it in the capability's Params with a Default, or read an optional one with Lookup)", getter, name))
	}
	return v
}

// String returns the string parameter name ("" if it is not a string). It
// panics if name has no value.
func (p Params) String(name string) string { s, _ := p.must("String", name).(string); return s }

// Int returns the int parameter name (0 if it is not an int). It panics if
// name has no value.
func (p Params) Int(name string) int { i, _ := p.must("Int", name).(int); return i }

// Float returns the float parameter name; an int value is converted (0 if
// it is not a number). It panics if name has no value.
func (p Params) Float(name string) float64 {
	switch v := p.must("Float", name).(type) {
	case float64:
		return v
	case int:
		return float64(v)
	}
	return 0
}

// Bool returns the bool parameter name (false if it is not a bool). It
// panics if name has no value.
func (p Params) Bool(name string) bool { b, _ := p.must("Bool", name).(bool); return b }

// Ints returns the list-of-int parameter name (nil if it is not a list of
// ints, e.g. a special value such as "each"). It panics if name has no
// value.
func (p Params) Ints(name string) []int {
	l, _ := p.must("Ints", name).([]any)
	var out []int
	for _, v := range l {
		i, ok := v.(int)
		if !ok {
			return nil
		}
		out = append(out, i)
	}
	return out
}

// ParamError is one problem with a parameter value. Path names the value
// ("threshold", "ops[2].resize.width"); the host maps it to a file position.
type ParamError struct {
	Path string
	Msg  string
	// Hint is an optional suggestion, such as a "did you mean" name.
	Hint string
}

func (e *ParamError) Error() string {
	s := e.Path + ": " + e.Msg
	if e.Path == "" {
		s = e.Msg
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// CheckParams validates values against specs and returns the values with
// defaults filled in and numbers normalised to the declared types, together
// with every problem found (not just the first). Unknown names are errors.
// Path prefixes error paths (use "" at the top level).
func CheckParams(specs []Param, values map[string]any, path string) (Params, []*ParamError) {
	out := Params{}
	var errs []*ParamError
	known := map[string]*Param{}
	for i := range specs {
		known[specs[i].Name] = &specs[i]
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sp, ok := known[k]
		if !ok {
			names := make([]string, 0, len(specs))
			for _, s := range specs {
				names = append(names, s.Name)
			}
			errs = append(errs, &ParamError{Path: join(path, k), Msg: fmt.Sprintf("unknown parameter %q", k), Hint: suggest.DidYouMean(k, names)})
			continue
		}
		v, es := checkValue(sp, values[k], join(path, k))
		errs = append(errs, es...)
		if len(es) == 0 {
			out[k] = v
		}
	}
	for _, sp := range specs {
		if _, ok := values[sp.Name]; ok {
			continue
		}
		if sp.Required {
			errs = append(errs, &ParamError{Path: join(path, sp.Name), Msg: fmt.Sprintf("missing required parameter %q (%s)", sp.Name, typeName(&sp))})
			continue
		}
		if sp.Default != nil {
			out[sp.Name] = sp.Default
		}
	}
	return out, errs
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func typeName(sp *Param) string {
	if sp.Type == List && sp.Elem != nil {
		return "list of " + typeName(sp.Elem)
	}
	return string(sp.Type)
}

func describeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("string %q", x)
	case bool:
		return fmt.Sprintf("bool %v", x)
	case int, int64, float64:
		return fmt.Sprintf("number %v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

func checkValue(sp *Param, v any, path string) (any, []*ParamError) {
	bad := func(format string, a ...any) (any, []*ParamError) {
		return nil, []*ParamError{{Path: path, Msg: fmt.Sprintf(format, a...)}}
	}
	switch sp.Type {
	case String:
		s, ok := v.(string)
		if !ok {
			return bad("expected %s, got %s", typeName(sp), describeValue(v))
		}
		if len(sp.Enum) > 0 && !contains(sp.Enum, s) {
			return nil, []*ParamError{{Path: path, Msg: fmt.Sprintf("%q is not one of %s", s, strings.Join(sp.Enum, ", ")), Hint: suggest.DidYouMean(s, sp.Enum)}}
		}
		if sp.Format != "" && !sp.Format.Check(s) {
			if !sp.Format.Known() {
				return bad("the parameter declares an unknown format %q", sp.Format)
			}
			return bad("expected %s, got %q", sp.Format.Text(), s)
		}
		if sp.Pattern != "" {
			re, err := compilePattern(sp.Pattern)
			if err != nil {
				return bad("the parameter declares an %v", err)
			}
			if !re.MatchString(s) {
				return bad("expected a string matching %s, got %q", sp.Pattern, s)
			}
		}
		return s, nil
	case Bool:
		b, ok := v.(bool)
		if !ok {
			return bad("expected bool, got %s", describeValue(v))
		}
		return b, nil
	case Int, Float:
		f, ok := number(v)
		if !ok {
			return bad("expected %s, got %s", sp.Type, describeValue(v))
		}
		if sp.Type == Int && f != math.Trunc(f) {
			return bad("expected int, got %v", f)
		}
		if sp.Min != nil && f < *sp.Min || sp.Max != nil && f > *sp.Max {
			return bad("%v is out of range %s", v, rangeText(sp))
		}
		if sp.Type == Int {
			return int(f), nil
		}
		return f, nil
	case List:
		if s, ok := v.(string); ok && len(sp.Enum) > 0 {
			if contains(sp.Enum, s) {
				return s, nil
			}
			return nil, []*ParamError{{Path: path, Msg: fmt.Sprintf("%q is not a list nor one of %s", s, strings.Join(sp.Enum, ", ")), Hint: suggest.DidYouMean(s, sp.Enum)}}
		}
		l, ok := v.([]any)
		if !ok {
			l = []any{v} // a single value is a one-element list
		}
		if sp.Elem == nil {
			return l, nil
		}
		out := make([]any, 0, len(l))
		var errs []*ParamError
		for i, e := range l {
			ev, es := checkValue(sp.Elem, e, fmt.Sprintf("%s[%d]", path, i))
			errs = append(errs, es...)
			out = append(out, ev)
		}
		if len(errs) > 0 {
			return nil, errs
		}
		return out, nil
	case Object:
		if v == nil {
			v = map[string]any{}
		}
		if s, ok := v.(string); ok && sp.OneOf {
			v = map[string]any{s: nil} // "- grayscale" means "- grayscale: {}"
		}
		m, ok := v.(map[string]any)
		if !ok {
			return bad("expected a mapping, got %s", describeValue(v))
		}
		if sp.OneOf {
			if len(m) != 1 {
				names := make([]string, 0, len(sp.Fields))
				for _, f := range sp.Fields {
					names = append(names, f.Name)
				}
				return bad("expected exactly one of %s, got %d keys", strings.Join(names, ", "), len(m))
			}
		}
		out, errs := CheckParams(sp.Fields, m, path)
		if len(errs) > 0 {
			return nil, errs
		}
		return map[string]any(out), nil
	}
	return bad("parameter has unknown type %q", sp.Type)
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	return 0, false
}

func rangeText(sp *Param) string {
	lo, hi := "-inf", "+inf"
	if sp.Min != nil {
		lo = strconv.FormatFloat(*sp.Min, 'g', -1, 64)
	}
	if sp.Max != nil {
		hi = strconv.FormatFloat(*sp.Max, 'g', -1, 64)
	}
	return "[" + lo + ", " + hi + "]"
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
