package spec

import (
	"fmt"
	"strings"

	"github.com/genpipe/genpipe/internal/suggest"
	"gopkg.in/yaml.v3"
)

// applyOverrides applies --set STAGE.KEY=VALUE flags to the stages' kind
// values (KEY "input" sets the stage's input: instead), and --set
// train.KEY=VALUE to the train: section. Nodes made from a flag are
// positioned at the flag, so a bad value given on the command line is
// reported there.
func (p *parser) applyOverrides(s *Spec, overrides []string) {
	cloned := map[*yaml.Node]bool{}
	for _, arg := range overrides {
		key, val, ok := strings.Cut(arg, "=")
		flag := "--set " + key
		stageID, path, dotted := strings.Cut(key, ".")
		if !ok || !dotted || stageID == "" || path == "" {
			p.flagErr(flag, "for example --set out.format=jpeg", "expected STAGE.KEY=VALUE")
			continue
		}
		if stageID == "train" && s.Train != nil {
			if s.Stage("train") != nil {
				p.flagErr(flag, "rename the stage", "ambiguous: the file has a train: section and a stage with id \"train\"")
				continue
			}
			if !s.Train.Bad {
				p.setKey(&s.Train.Node, cloned, flag, key, "train", path, val)
			}
			continue
		}
		st := s.Stage(stageID)
		if st == nil {
			hint := suggest.DidYouMean(stageID, s.StageIDs())
			if hint == "" && len(s.StageIDs()) > 0 {
				hint = "stages: " + strings.Join(s.StageIDs(), ", ")
			}
			p.flagErr(flag, hint, "unknown stage %q", stageID)
			continue
		}
		if path == "input" { // the stage's input:, not a parameter
			value, err := parseFlagValue(val)
			if err != nil {
				p.flagErr(flag, "", "invalid value %q: %v", val, err)
				continue
			}
			p.mark(value, flag)
			st.Inputs, st.InputPos = p.inputs(value), Pos{File: flag}
			continue
		}
		if path == "keep" || strings.HasPrefix(path, "keep.") {
			// keep: is the stage's, not a parameter: set it whole or a key
			// of it, then read it again.
			if path == "keep" {
				value, err := parseFlagValue(val)
				if err != nil {
					p.flagErr(flag, "", "invalid value %q: %v", val, err)
					continue
				}
				p.mark(value, flag)
				st.keepNode = value
			} else {
				if st.keepNode == nil {
					st.keepNode = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
					p.mark(st.keepNode, flag)
				}
				p.setKey(&st.keepNode, cloned, flag, key, stageID, strings.TrimPrefix(path, "keep."), val)
				// What the flag made of keep: is reported at the flag.
				p.mark(deref(st.keepNode), flag)
			}
			if st.keepKey == nil {
				st.keepKey = &yaml.Node{Kind: yaml.ScalarNode, Value: "keep"}
				p.mark(st.keepKey, flag)
			}
			st.Keep = p.keep(st.keepKey, st.keepNode)
			continue
		}
		if path == "id" || strings.HasPrefix(path, "id.") {
			p.flagErr(flag, "", "--set cannot rename a stage")
			continue
		}
		if st.Node == nil {
			continue // the stage has no kind; that error is already reported
		}
		if deref(st.Node).Kind != yaml.MappingNode {
			p.flagErr(flag, "", "stage %q is a %s stage whose value is %s: --set can only set keys of a mapping", stageID, st.Kind, describe(st.Node))
			continue
		}
		p.setKey(&st.Node, cloned, flag, key, stageID, path, val)
	}
}

// setKey sets the dotted path in the mapping *node (a stage's kind value or
// the train section) to the YAML value val, cloning the mapping first so
// that anchored nodes shared with other parts of the file do not change.
func (p *parser) setKey(node **yaml.Node, cloned map[*yaml.Node]bool, flag, key, owner, path, val string) {
	value, err := parseFlagValue(val)
	if err != nil {
		p.flagErr(flag, "quote strings that YAML would misread", "invalid value %q: %v", val, err)
		return
	}
	if !cloned[*node] {
		// The value may share anchored nodes with other stages; an
		// override must change this one only.
		*node = clone(*node)
		cloned[*node] = true
	}
	p.mark(value, flag)
	m := deref(*node)
	segs := strings.Split(path, ".")
	for i, seg := range segs {
		if seg == "" {
			p.flagErr(flag, "", "empty key in %q", key)
			return
		}
		if i == len(segs)-1 {
			set(m, seg, value, p.markKey(seg, flag))
			return
		}
		next := find(m, seg)
		switch {
		case next == nil:
			next = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			p.origin[next] = flag
			set(m, seg, next, p.markKey(seg, flag))
		case isNull(next):
			next.Kind, next.Tag, next.Value = yaml.MappingNode, "!!map", ""
		case next.Kind != yaml.MappingNode:
			p.flagErr(flag, "", "%s.%s is not a mapping (it is %s), so it has no key %q", owner, strings.Join(segs[:i+1], "."), describe(next), segs[i+1])
			return
		}
		m = next
	}
}

func (p *parser) flagErr(flag, hint, format string, a ...any) {
	p.errs = append(p.errs, Errorf(Pos{File: flag}, hint, format, a...))
}

func (p *parser) mark(n *yaml.Node, flag string) {
	p.origin[n] = flag
	for _, c := range n.Content {
		p.mark(c, flag)
	}
}

func (p *parser) markKey(name, flag string) *yaml.Node {
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}
	p.origin[k] = flag
	return k
}

// parseFlagValue reads VALUE of --set as YAML, so numbers, bools, lists
// ([1, 2]) and mappings ({columns: 4}) work; an empty value is "".
func parseFlagValue(val string) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(val), &doc); err != nil {
		return nil, fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: ""}, nil
	}
	n := doc.Content[0]
	if n.Kind == yaml.AliasNode || strings.HasPrefix(strings.TrimSpace(val), "&") {
		return nil, fmt.Errorf("anchors and aliases are not supported in --set")
	}
	return n, nil
}

// find returns the value of key in mapping m: an explicit key first, then
// one merged in with <<.
func find(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.ShortTag() != "!!merge" && k.Value == key {
			return deref(m.Content[i+1])
		}
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.ShortTag() == "!!merge" {
			srcs := []*yaml.Node{deref(m.Content[i+1])}
			if srcs[0].Kind == yaml.SequenceNode {
				srcs = srcs[0].Content
			}
			for _, src := range srcs {
				if src = deref(src); src.Kind == yaml.MappingNode {
					if v := find(src, key); v != nil {
						return v
					}
				}
			}
		}
	}
	return nil
}

// set replaces the explicit value of key in m, or adds key: value (an
// explicit key also wins over a merged one).
func set(m *yaml.Node, key string, value, keyNode *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.ShortTag() != "!!merge" && k.Value == key {
			m.Content[i+1] = value
			return
		}
	}
	m.Content = append(m.Content, keyNode, value)
}

// clone deep-copies n, expanding aliases, keeping positions.
func clone(n *yaml.Node) *yaml.Node {
	n = deref(n)
	c := *n
	c.Anchor = ""
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, x := range n.Content {
		c.Content[i] = clone(x)
	}
	return &c
}
