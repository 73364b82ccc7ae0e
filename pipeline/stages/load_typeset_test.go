package stages

import (
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/font/gofont/gomono"
)

func TestLoadTypeset(t *testing.T) {
	open := func(raw map[string]any) *Loader {
		t.Helper()
		l, err := NewLoader(checked(t, LoadParam, map[string]any{"typeset": raw}), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := open(map[string]any{"count": 12, "start": 95})
	got, ents := enumerate(t, l)
	if len(got) != 12 || got[0].Name != "00095" || got[11].Name != "00106" {
		t.Fatalf("names %v, want 00095..00106", got)
	}
	for i, g := range got {
		if g.Label != (95+i)%10 {
			t.Errorf("item %s has label %d, want %d", g.Name, g.Label, (95+i)%10)
		}
	}
	if o := l.Output(); o.Channels != 1 || o.Height != 28 || o.Width != 28 {
		t.Errorf("Output() = %+v, want 1x28x28", o)
	}
	// Item 100 is the same image when it is the 6th of a set starting at 95
	// or the 1st of one starting at 100 (a held-out set is a start offset).
	a, err := l.Decode(ents[5])
	if err != nil {
		t.Fatal(err)
	}
	_, ents2 := enumerate(t, open(map[string]any{"count": 1, "start": 100}))
	b, _ := l.Decode(ents2[0])
	if !pixelsEqual(a, b) || ents[5].Source != ents2[0].Source {
		t.Error("item 100 depends on the set's start")
	}
	if ents[5].Source[:8] != "typeset:" {
		t.Errorf("source %q, want typeset:FACE#N", ents[5].Source)
	}
	if g := a.(*image.Gray); g.Rect.Dx() != 28 {
		t.Errorf("decoded %v, want 28x28", g.Rect)
	}

	// Font files, relative to the pipeline file.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "fonts"), 0o755)
	os.WriteFile(filepath.Join(dir, "fonts", "mono.ttf"), gomono.TTF, 0o644)
	lf, err := NewLoader(checked(t, LoadParam, map[string]any{"typeset": map[string]any{"count": 3, "faces": []any{"fonts/mono.ttf"}}}), dir)
	if err != nil {
		t.Fatal(err)
	}
	_, fe := enumerate(t, lf)
	if !strings.HasPrefix(fe[0].Source, "typeset:mono.ttf#") {
		t.Errorf("source %q, want the font file's name", fe[0].Source)
	}
}

func TestLoadTypesetErrors(t *testing.T) {
	cases := []struct {
		raw  map[string]any
		path string
		msg  string
	}{
		{map[string]any{"typeset": map[string]any{"count": 5, "faces": []any{"comic"}}}, "typeset.faces[0]", `unknown face "comic"`},
		{map[string]any{"typeset": map[string]any{"count": 5, "rotate": []any{10.0, -10.0}}}, "typeset.rotate", "not an interval"},
		{map[string]any{"typeset": map[string]any{"count": 5, "size": []any{0.1, 1.0}}}, "typeset.size", "outside"},
		{map[string]any{"typeset": map[string]any{"count": 5, "weight": []any{1.0}}}, "typeset.weight", "want [low, high]"},
		{map[string]any{"typeset": map[string]any{"count": 5}, "dir": "x"}, "typeset", "dir and typeset are both given"},
	}
	for _, c := range cases {
		errs := CheckLoad(checked(t, LoadParam, c.raw))
		found := false
		for _, e := range errs {
			found = found || (e.Path == c.path && strings.Contains(e.Msg, c.msg))
		}
		if !found {
			t.Errorf("%v: errors %v, want one at %s containing %q", c.raw, fmt.Sprint(errs), c.path, c.msg)
		}
	}
	errs := loadFiles(checked(t, LoadParam, map[string]any{"typeset": map[string]any{"count": 5, "faces": []any{"fonts/none.ttf"}}}), ParseEnv{BaseDir: t.TempDir()})
	if len(errs) != 1 || errs[0].Path != "typeset.faces[0]" {
		t.Errorf("missing font file: %v, want an error at typeset.faces[0]", errs)
	}
}
