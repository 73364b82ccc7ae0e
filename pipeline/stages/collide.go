package stages

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/genpipe/genpipe/sdk"
)

// SaveTarget is one save stage as [CheckSaveTargets] sees it.
type SaveTarget struct {
	// ID is the stage id, Params its checked save parameters.
	ID     string
	Params map[string]any
	// Dir is the resolved output folder.
	Dir string
	// Inputs are the ids of the stages the save reads: an item's {stage}
	// is the id of the input it came through.
	Inputs []string
}

// CheckSaveTargets reports the file-name collisions that the pipeline file
// already shows: a save with several inputs whose name template renders
// items of different inputs alike (they share index, name and label), and
// two saves that can write the same file (same folder, names that do not
// differ in a literal part, or the same grid or animation file). errs[i]
// holds ts[i]'s errors, with paths relative to the save mapping. Collisions
// that only the items show are the run's to report ([Saver.Write]).
func CheckSaveTargets(ts []SaveTarget) (errs [][]*sdk.ParamError) {
	errs = make([][]*sdk.ParamError, len(ts))
	type target struct {
		s        *Saver
		patterns [][]tmplPart // one per input
		files    []string     // grid and animation
	}
	tg := make([]*target, len(ts))
	for i, t := range ts {
		s, perrs := parseSave(t.Params)
		if len(perrs) > 0 || s.tmpl == nil {
			continue
		}
		x := &target{s: s}
		dir := filepath.ToSlash(filepath.Clean(t.Dir)) + "/"
		if s.grid != nil {
			x.files = append(x.files, dir+s.grid.file)
		}
		if s.anim != nil {
			x.files = append(x.files, dir+s.anim.file)
		}
		if s.images {
			ext := formatExt[s.format]
			if s.prov == "sidecar" {
				ext = "" // NAME.json collides whatever the image format
			}
			inputs := t.Inputs
			if len(inputs) == 0 {
				inputs = []string{t.ID}
			}
			for _, in := range inputs {
				x.patterns = append(x.patterns, s.tmpl.pattern(dir, in, ext))
			}
		}
		tg[i] = x
		for a := 0; a < len(x.patterns); a++ {
			for b := a + 1; b < len(x.patterns); b++ {
				if mayEqual(x.patterns[a], x.patterns[b]) {
					e := &sdk.ParamError{Path: "name", Msg: fmt.Sprintf(
						"the inputs %q and %q of save stage %q write the same file names (their items share index, name and label)",
						inputs(t)[a], inputs(t)[b], t.ID)}
					e.Hint = `add {stage} to name, e.g. name: "{stage}-{name}"`
					errs[i] = append(errs[i], e)
					a = len(x.patterns)
					break
				}
			}
		}
	}
	for j := range ts {
		if tg[j] == nil {
			continue
		}
	earlier:
		for i := 0; i < j; i++ {
			if tg[i] == nil {
				continue
			}
			for _, f := range tg[j].files {
				for _, g := range tg[i].files {
					if f == g {
						errs[j] = append(errs[j], &sdk.ParamError{Path: "dir",
							Msg:  fmt.Sprintf("save stage %q writes %s, as save stage %q does", ts[j].ID, path.Base(f), ts[i].ID),
							Hint: "give each save its own dir or grid/animation file name"})
						break earlier
					}
				}
			}
			for _, p := range tg[j].patterns {
				for _, q := range tg[i].patterns {
					if mayEqual(p, q) {
						errs[j] = append(errs[j], &sdk.ParamError{Path: "dir",
							Msg: fmt.Sprintf("save stage %q can write the same file names as save stage %q, into the same folder %s",
								ts[j].ID, ts[i].ID, Values(ts[j].Params).String("dir")),
							Hint: fmt.Sprintf(`give each save its own dir, or names that differ, e.g. name: "%s-{name}"`, ts[j].ID)})
						break earlier
					}
				}
			}
		}
	}
	return errs
}

func inputs(t SaveTarget) []string {
	if len(t.Inputs) == 0 {
		return []string{t.ID}
	}
	return t.Inputs
}

// pattern is the template as the file names of items coming through stage
// input: dir and ext as literals, {stage} filled in, adjacent literals
// joined.
func (t *nameTemplate) pattern(dir, input, ext string) []tmplPart {
	out := []tmplPart{{lit: dir}}
	add := func(lit string) {
		if last := &out[len(out)-1]; last.field == "" {
			last.lit += lit
			return
		}
		out = append(out, tmplPart{lit: lit})
	}
	for _, p := range t.parts {
		switch p.field {
		case "":
			add(p.lit)
		case "stage":
			add(input)
		default:
			out = append(out, p)
		}
	}
	add(ext)
	return out
}

// mayEqual reports whether two patterns can render the same name. With the
// same fields in the same order they do when every literal is the same
// (items of a multi-input save share their field values); a differing
// literal is taken to tell them apart. With different fields, only a
// literal start or end that cannot match tells them apart.
func mayEqual(p, q []tmplPart) bool {
	if sameFields(p, q) {
		for i := range p {
			if p[i].lit != q[i].lit {
				return false
			}
		}
		return true
	}
	pp, qp := p[0].lit, q[0].lit
	if !strings.HasPrefix(pp, qp) && !strings.HasPrefix(qp, pp) {
		return false
	}
	ps, qs := p[len(p)-1].lit, q[len(q)-1].lit
	if p[len(p)-1].field != "" {
		ps = ""
	}
	if q[len(q)-1].field != "" {
		qs = ""
	}
	return strings.HasSuffix(ps, qs) || strings.HasSuffix(qs, ps)
}

func sameFields(p, q []tmplPart) bool {
	if len(p) != len(q) {
		return false
	}
	for i := range p {
		if p[i].field != q[i].field || p[i].width != q[i].width {
			return false
		}
	}
	return true
}
