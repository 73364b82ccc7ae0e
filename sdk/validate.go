package sdk

import (
	"fmt"
	"regexp"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// ValidateDescription reports every problem with a description that would
// make it unusable by the host: empty name or version, unknown or duplicate
// capabilities, malformed parameters (a default that fails its own spec, an
// empty enum value, min above max, an invalid pattern, an unknown format),
// presets naming undeclared capabilities or lacking the image/latent
// contract their capabilities need (generate needs Output or LatentData,
// not both), and size rules that contradict their Height and Width or sit
// on an input. Serve logs these problems at start; sdktest fails on them.
func ValidateDescription(d Description) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if d.Name == "" {
		bad("description: empty name")
	} else if !nameRE.MatchString(d.Name) {
		bad("description: name %q must be lowercase letters, digits, '-' or '_' (it is part of the file name pipeline-plugin-NAME)", d.Name)
	}
	if d.Version == "" {
		bad("description: empty version")
	}
	if d.BatchSize < 0 {
		bad("description: negative batch size %d", d.BatchSize)
	}
	declared := map[Capability]bool{}
	for _, c := range d.Capabilities {
		if !knownCapability(c.Name) {
			bad("capability %q: unknown (want one of %v)", c.Name, Capabilities)
			continue
		}
		if declared[c.Name] {
			bad("capability %q: declared twice", c.Name)
		}
		declared[c.Name] = true
		errs = append(errs, validateParams(c.Params, string(c.Name)+".params")...)
		if c.Name == CapTrain && len(c.Scores) > 0 {
			bad("capability %q: declares scores, but training answers no items", c.Name)
		}
		names := map[string]bool{}
		for _, sc := range c.Scores {
			if !validName(sc.Name) {
				bad("capability %q: score %q: a score name must be lowercase letters, digits and _, starting with a letter (a pipeline file's keep: names it)", c.Name, sc.Name)
			}
			if names[sc.Name] {
				bad("capability %q: score %q declared twice", c.Name, sc.Name)
			}
			names[sc.Name] = true
		}
	}
	seen := map[string]bool{}
	defaults := 0
	supported := map[Capability]bool{}
	for i, p := range d.Presets {
		where := fmt.Sprintf("preset %q", p.Name)
		if p.Name == "" {
			where = fmt.Sprintf("preset #%d", i)
			bad("%s: empty name", where)
		}
		if seen[p.Name] {
			bad("%s: declared twice", where)
		}
		seen[p.Name] = true
		if p.Default {
			defaults++
		}
		if p.Classes < 0 {
			bad("%s: negative classes %d", where, p.Classes)
		}
		for _, c := range p.Capabilities {
			if !declared[c] {
				bad("%s: capability %q is not declared by the plugin", where, c)
				continue
			}
			supported[c] = true
			switch c {
			case CapEncode, CapTranslate, CapDenoise:
				if p.Input == nil {
					bad("%s: %s needs an Input image spec", where, c)
				}
			}
			switch c {
			case CapGenerate:
				if p.Output == nil && p.LatentData == nil {
					bad("%s: generate needs an Output image spec, or LatentData when it emits latents", where)
				}
			case CapTranslate, CapDenoise:
				if p.Output == nil {
					bad("%s: %s needs an Output image spec", where, c)
				}
			}
			if c == CapEncode && p.Latent == nil {
				bad("%s: encode needs a Latent spec", where)
			}
		}
		for _, e := range validateImageSpec(p.Input) {
			bad("%s: input: %s", where, e)
		}
		if p.Input != nil && p.Input.Size != (Size{}) {
			bad("%s: input: size rule %s is for outputs (an input accepts any size where Height and Width are 0)", where, p.Input.Size)
		}
		for _, e := range validateImageSpec(p.Output) {
			bad("%s: output: %s", where, e)
		}
		if p.Output != nil {
			for _, e := range validateSize(p.Output) {
				bad("%s: output: %s", where, e)
			}
		}
		if l := p.Latent; l != nil {
			if l.Space == "" {
				bad("%s: latent: empty space id", where)
			}
			if l.Dim <= 0 {
				bad("%s: latent: dim %d, want > 0", where, l.Dim)
			}
		}
		if l := p.LatentData; l != nil {
			if l.Space == "" {
				bad("%s: latent data: empty space id", where)
			}
			if l.Dim <= 0 {
				bad("%s: latent data: dim %d, want > 0", where, l.Dim)
			}
			// Generate emits either images or latents, and the host
			// must know which before it runs.
			if p.Output != nil {
				bad("%s: latent data and an Output image spec: generate emits one or the other", where)
			}
			if len(p.TrainInputs) > 0 {
				bad("%s: latent data with train inputs: a latent training reads one stream", where)
			}
		}
		if len(p.TrainInputs) > 0 {
			if !p.Has(CapTrain) {
				bad("%s: train inputs are declared, but the preset cannot train", where)
			}
			if len(p.TrainInputs) < 2 {
				bad("%s: one train input: leave TrainInputs empty (train.input names the stage)", where)
			}
			roles := map[string]bool{}
			for j, ti := range p.TrainInputs {
				switch {
				case !validName(ti.Name):
					bad("%s: train input #%d: name %q is not a lower-case identifier", where, j, ti.Name)
				case roles[ti.Name]:
					bad("%s: train input %q declared twice", where, ti.Name)
				case j == 0 && ti.Paired:
					bad("%s: train input %q: the first role is what the others pair with; it cannot be Paired", where, ti.Name)
				}
				roles[ti.Name] = true
				for _, e := range validateImageSpec(ti.Image) {
					bad("%s: train input %q: image: %s", where, ti.Name, e)
				}
			}
		}
	}
	if defaults > 1 {
		bad("description: %d presets are marked Default, want at most one", defaults)
	}
	for _, c := range d.Capabilities {
		if c.Name != CapTrain && knownCapability(c.Name) && !supported[c.Name] {
			bad("capability %q: no preset supports it", c.Name)
		}
	}
	return errs
}

func knownCapability(c Capability) bool {
	for _, k := range Capabilities {
		if k == c {
			return true
		}
	}
	return false
}

func validateImageSpec(s *ImageSpec) []string {
	if s == nil {
		return nil
	}
	var out []string
	if s.Channels < 0 || s.Height < 0 || s.Width < 0 {
		out = append(out, fmt.Sprintf("negative size %dx%dx%d", s.Channels, s.Height, s.Width))
	}
	if s.DType.Size() == 0 {
		out = append(out, fmt.Sprintf("unknown dtype %s", s.DType))
	}
	if !(s.Max > s.Min) {
		out = append(out, fmt.Sprintf("value range [%v, %v] is empty", s.Min, s.Max))
	}
	if s.DType == Uint8 && (s.Min < 0 || s.Max > 255) {
		out = append(out, fmt.Sprintf("value range [%v, %v] does not fit uint8", s.Min, s.Max))
	}
	return out
}

func validateParams(ps []Param, path string) []error {
	var errs []error
	seen := map[string]bool{}
	for i := range ps {
		p := &ps[i]
		where := path + "." + p.Name
		if p.Name == "" {
			where = fmt.Sprintf("%s[%d]", path, i)
			errs = append(errs, fmt.Errorf("%s: empty parameter name", where))
		}
		if seen[p.Name] {
			errs = append(errs, fmt.Errorf("%s: declared twice", where))
		}
		seen[p.Name] = true
		errs = append(errs, validateParam(p, where)...)
	}
	return errs
}

func validateParam(p *Param, where string) []error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf(where+": "+format, a...))
	}
	switch p.Type {
	case String, Int, Float, Bool, List, Object:
	default:
		bad("unknown type %q", p.Type)
		return errs
	}
	if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
		bad("min %v is above max %v", *p.Min, *p.Max)
	}
	if (p.Min != nil || p.Max != nil) && p.Type != Int && p.Type != Float {
		bad("min/max set on a %s", p.Type)
	}
	enums := map[string]bool{}
	for _, e := range p.Enum {
		if e == "" {
			bad("empty enum value")
		}
		if enums[e] {
			bad("enum value %q listed twice", e)
		}
		enums[e] = true
	}
	if len(p.Enum) > 0 && p.Type != String && p.Type != List {
		bad("enum set on a %s", p.Type)
	}
	if p.Pattern != "" {
		if p.Type != String {
			bad("pattern set on a %s", p.Type)
		}
		if _, err := compilePattern(p.Pattern); err != nil {
			bad("%v", err)
		}
	}
	if p.Format != "" {
		if p.Type != String {
			bad("format set on a %s", p.Type)
		}
		if !p.Format.Known() {
			bad("unknown format %q (want one of %v)", p.Format, Formats)
		}
	}
	if p.Required && p.Default != nil {
		bad("required parameter has a default")
	}
	if p.Type == List && p.Elem != nil {
		errs = append(errs, validateParam(p.Elem, where+"[]")...)
	}
	if p.Type == Object {
		if len(p.Fields) == 0 {
			bad("object has no fields")
		}
		errs = append(errs, validateParams(p.Fields, where)...)
	}
	if p.OneOf && p.Type != Object {
		bad("oneOf set on a %s", p.Type)
	}
	if p.Default != nil {
		if _, es := checkValue(p, p.Default, where); len(es) > 0 {
			for _, e := range es {
				bad("default %v fails its own spec: %s", p.Default, e.Msg)
			}
		}
	}
	return errs
}

// validName reports whether s is a lower-case identifier (a-z, 0-9, _,
// starting with a letter): a key a pipeline file can write unquoted.
func validName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// validateSize checks an output's size rule against its Height and Width.
func validateSize(s *ImageSpec) []string {
	z := s.Size
	var out []string
	if z.Rule != SizeScale && (z.Num != 0 || z.Den != 0) {
		out = append(out, fmt.Sprintf("size factor %d/%d set with rule %q (only %q has one)", z.Num, z.Den, z.Rule, SizeScale))
	}
	switch z.Rule {
	case "":
	case SizeFixed:
		if s.Height <= 0 || s.Width <= 0 {
			out = append(out, fmt.Sprintf("size rule %q needs Height and Width, got %dx%d", z.Rule, s.Width, s.Height))
		}
	case SizeSame, SizeAny, SizeScale:
		if s.Height != 0 || s.Width != 0 {
			out = append(out, fmt.Sprintf("size rule %q with a fixed size %dx%d (set Height and Width only with %q)", z.Rule, s.Width, s.Height, SizeFixed))
		}
		if z.Rule == SizeScale && (z.Num <= 0 || z.Den <= 0) {
			out = append(out, fmt.Sprintf("size rule %q needs a factor Num/Den with both > 0, got %d/%d", z.Rule, z.Num, z.Den))
		}
	default:
		out = append(out, fmt.Sprintf("unknown size rule %q (want %s, %s, %s or %s)", z.Rule, SizeSame, SizeFixed, SizeScale, SizeAny))
	}
	return out
}
