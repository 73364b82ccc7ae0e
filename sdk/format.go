package sdk

import (
	"fmt"
	"regexp"
	"sync"
	"time"
)

// formatInfo is what the SDK knows about one [Format].
type formatInfo struct {
	// text names the form in messages: "expected a color (#rgb or #rrggbb)".
	text string
	// pattern approximates the format as an anchored regular expression for
	// the JSON Schema, where editors check it (ECMA-262 compatible).
	pattern string
	// check is the exact test.
	check func(string) bool
}

var colorRE = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

var formats = map[Format]formatInfo{
	FormatColor: {
		text:    "a color (#rgb or #rrggbb)",
		pattern: colorRE.String(),
		check:   colorRE.MatchString,
	},
	FormatDuration: {
		text:    `a duration (such as "300ms", "1.5s" or "2h45m")`,
		pattern: `^[-+]?(0|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))*$`,
		check: func(s string) bool {
			_, err := time.ParseDuration(s)
			return err == nil
		},
	},
	FormatImage: {
		text:    "an image file (a path to a png, jpeg or gif file, relative to the pipeline's folder)",
		pattern: `^.+$`,
		check:   func(s string) bool { return s != "" },
	},
}

// Known reports whether f is one of [Formats].
func (f Format) Known() bool { _, ok := formats[f]; return ok }

// Text describes the form f asks for, for messages and docs: "a color
// (#rgb or #rrggbb)". It is "" for an unknown format.
func (f Format) Text() string { return formats[f].text }

// Pattern is an anchored regular expression for f that JSON Schema
// validators (ECMA-262) understand; the SDK's own check is exact, this may
// be looser. It is "" for an unknown format.
func (f Format) Pattern() string { return formats[f].pattern }

// Check reports whether s has the form f; an unknown format accepts
// nothing.
func (f Format) Check(s string) bool {
	fi, ok := formats[f]
	return ok && fi.check(s)
}

// AnchoredPattern is pattern as a Param's value must match it: the whole
// value, so "[a-z]+" does not accept "abc1". It is written for RE2 and
// for the ECMA-262 regular expressions of JSON Schema alike.
func AnchoredPattern(pattern string) string { return `^(?:` + pattern + `)$` }

// patterns caches compiled Param.Pattern expressions: parameters are
// checked once per stage and again in the plugin's Load.
var patterns sync.Map // string -> *regexp.Regexp or error

// compilePattern compiles a Param.Pattern, anchored.
func compilePattern(pattern string) (*regexp.Regexp, error) {
	if v, ok := patterns.Load(pattern); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(AnchoredPattern(pattern))
	if err != nil {
		err = fmt.Errorf("invalid pattern %q: %v", pattern, err)
		patterns.Store(pattern, err)
		return nil, err
	}
	patterns.Store(pattern, re)
	return re, nil
}
