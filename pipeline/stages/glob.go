package stages

import (
	"fmt"
	"path"
	"strings"
)

// glob is a compiled load pattern. A pattern without "/" matches the file's
// base name at any depth (as in .gitignore: "*.png" finds PNGs in every
// sub-folder); otherwise it is matched against the whole slash-separated
// path relative to dir, segment by segment with path.Match, where a "**"
// segment matches any number of folders (also none).
type glob struct {
	segs []string
	base bool
}

func compileGlob(p string) (*glob, error) {
	p = strings.TrimPrefix(p, "./")
	if p == "" {
		return nil, fmt.Errorf("empty pattern")
	}
	if strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("pattern %q is absolute; it is matched against paths relative to dir", p)
	}
	g := &glob{segs: strings.Split(p, "/")}
	g.base = len(g.segs) == 1 && p != "**"
	for _, s := range g.segs {
		if s == ".." {
			return nil, fmt.Errorf("pattern %q contains \"..\"; it is matched against paths inside dir", p)
		}
		if _, err := path.Match(s, ""); err != nil {
			return nil, fmt.Errorf("pattern %q: bad segment %q: %w", p, s, err)
		}
	}
	return g, nil
}

// match reports whether rel (slash-separated, relative to dir) matches.
func (g *glob) match(rel string) bool {
	if g.base {
		ok, _ := path.Match(g.segs[0], path.Base(rel))
		return ok
	}
	return matchSegs(g.segs, strings.Split(rel, "/"))
}

func matchSegs(pat, parts []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(parts); i++ {
				if matchSegs(pat[1:], parts[i:]) {
					return true
				}
			}
			return false
		}
		if len(parts) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], parts[0]); !ok {
			return false
		}
		pat, parts = pat[1:], parts[1:]
	}
	return len(parts) == 0
}
