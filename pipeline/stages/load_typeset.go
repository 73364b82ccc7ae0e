package stages

import (
	"fmt"
	"image"
	"path/filepath"
	"strings"

	"github.com/genpipe/genpipe/internal/typeset"
	"github.com/genpipe/genpipe/sdk"
)

// rangeParam declares a jitter range [low, high] with its default.
func rangeParam(name, doc string, r typeset.Range) sdk.Param {
	return sdk.Param{Name: name, Type: sdk.List, Doc: doc + fmt.Sprintf(" (default [%g, %g])", r.Lo, r.Hi),
		Elem: &sdk.Param{Name: name, Type: sdk.Float}}
}

// typesetParam declares load's typeset source: digits rendered with the Go
// fonts (or font files), framed like MNIST, the translate family's domain A.
var typesetParam = sdk.Param{Name: "typeset", Type: sdk.Object,
	Doc: "render digits 0-9 with fonts, framed like MNIST (white on black, fitted in a 20x20 box, centred by mass in 28x28), with seeded jitter; every item is labelled with its digit, and item N is the same image whatever count, start or worker count",
	Fields: []sdk.Param{
		{Name: "count", Type: sdk.Int, Required: true, Min: sdk.Bound(1), Doc: "number of digits (digits cycle 0-9)"},
		{Name: "start", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Doc: "number of the first item: a held-out set is another start (or seed) of the same set"},
		{Name: "seed", Type: sdk.Int, Default: 1, Min: sdk.Bound(0), Doc: "seed of the faces and jitter drawn for each item"},
		{Name: "faces", Type: sdk.List, Elem: &sdk.Param{Name: "face", Type: sdk.String},
			Doc: "fonts to draw from: built-in Go faces (" + strings.Join(typeset.Faces(), ", ") + ") or .ttf/.otf files relative to the pipeline file (default: every built-in face)"},
		rangeParam("size", "the glyph's longer side as a fraction of the 20-pixel box", typeset.DefaultJitter.Size),
		rangeParam("weight", "stroke thickening (+) or thinning (-) in pixels per side", typeset.DefaultJitter.Weight),
		rangeParam("slant", "shear: x moves right by slant times the height", typeset.DefaultJitter.Slant),
		rangeParam("rotate", "rotation in degrees, counter-clockwise", typeset.DefaultJitter.Rotate),
	}}

// typesetSource is an open typeset load.
type typesetSource struct {
	set          *typeset.Set
	start, count int
}

// typesetConfig reads the typeset mapping's values into a jitter, faces
// (unresolved) and the set's numbering; errors carry field paths.
func typesetConfig(v any) (j typeset.Jitter, faces []string, count, start int, seed uint64, errs []*sdk.ParamError) {
	p := Values(asMap(v))
	j = typeset.DefaultJitter
	fields := j.Fields()
	for _, name := range []string{"size", "weight", "slant", "rotate"} {
		raw, ok := p[name].([]any)
		if !ok {
			continue
		}
		path := "typeset." + name
		if len(raw) != 2 {
			errs = append(errs, &sdk.ParamError{Path: path, Msg: fmt.Sprintf("want [low, high], got %d values", len(raw))})
			continue
		}
		r := typeset.Range{Lo: toFloat(raw[0]), Hi: toFloat(raw[1])}
		if err := typeset.CheckField(name, r); err != nil {
			errs = append(errs, &sdk.ParamError{Path: path, Msg: strings.TrimPrefix(err.Error(), name+": ")})
			continue
		}
		*fields[name] = r
	}
	if l, ok := p["faces"].([]any); ok {
		for _, f := range l {
			s, _ := f.(string)
			faces = append(faces, s)
		}
	}
	count, start = p.Int("count"), p.Int("start")
	seed = uint64(p.Int("seed"))
	return
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int:
		return float64(x)
	}
	return 0
}

// checkTypeset checks the typeset mapping's ranges and built-in face
// names (font files are checked when the load opens).
func checkTypeset(v any) []*sdk.ParamError {
	_, faces, _, _, _, errs := typesetConfig(v)
	known := map[string]bool{}
	for _, f := range typeset.Faces() {
		known[f] = true
	}
	for i, f := range faces {
		if !known[f] && !strings.ContainsAny(f, "./") {
			e := &sdk.ParamError{Path: fmt.Sprintf("typeset.faces[%d]", i), Msg: fmt.Sprintf("unknown face %q", f)}
			e.Hint = "built-in faces: " + strings.Join(typeset.Faces(), ", ") + "; or a .ttf/.otf file"
			errs = append(errs, e)
		}
	}
	return errs
}

// openTypeset prepares the typeset source: parses the faces (font files
// relative to the pipeline file, through resolve).
func (l *Loader) openTypeset(v any, resolve func(string) string) error {
	j, faces, count, start, seed, errs := typesetConfig(v)
	if len(errs) > 0 {
		return fmt.Errorf("load: %w", joinParamErrors(errs))
	}
	for i, f := range faces {
		if strings.ContainsAny(f, "./") {
			faces[i] = resolve(filepath.FromSlash(f))
		}
	}
	set, err := typeset.NewSet(faces, j, seed)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	l.mode = "typeset"
	l.typeset = &typesetSource{set: set, start: start, count: count}
	l.count, l.rows, l.cols = count, typeset.Size, typeset.Size
	return nil
}

func (l *Loader) enumerateTypeset(emit func(Entry) error) error {
	ts := l.typeset
	width := max(5, len(fmt.Sprint(ts.start+ts.count-1)))
	for i := ts.start; i < ts.start+ts.count; i++ {
		f, p := ts.set.Params(i)
		e := Entry{
			Name:   fmt.Sprintf("%0*d", width, i),
			Source: fmt.Sprintf("typeset:%s#%d", filepath.Base(f.Name), i),
			Label:  p.Digit,
			Width:  typeset.Size, Height: typeset.Size,
			seq: i,
		}
		if err := emit(e); err != nil {
			return err
		}
	}
	return nil
}

// renderTypeset draws the entry's digit (in the decode workers, so the
// rendering runs in parallel).
func (l *Loader) renderTypeset(e Entry) (image.Image, error) {
	img, _, err := l.typeset.set.Item(e.seq)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return img, nil
}
