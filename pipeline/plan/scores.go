package plan

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/genpipe/genpipe/pipeline/spec"
)

// scores works out, in topological order, which per-item scores every item
// leaving each stage carries, and checks each keep: against the scores of
// the items the stage reads. A score is carried when a model stage on every
// path to the stage declares it for its kind ([sdk.CapabilitySpec.Scores]):
// with several inputs, only the scores all of them carry, since an item
// from one branch lacks the other's.
func (b *builder) scores(order []*bnode) {
	carried := map[*bnode]map[string]string{} // score -> the stage that attaches it
	unknown := map[*bnode]bool{}              // some stage upstream could not be checked
	for _, bn := range order {
		var in map[string]string
		unk := !bn.ok
		for i, src := range bn.inputs {
			unk = unk || unknown[src]
			if i == 0 {
				in = copyScores(carried[src])
				continue
			}
			for name := range in {
				if _, ok := carried[src][name]; !ok {
					delete(in, name)
				}
			}
		}
		if k := bn.st.Keep; k != nil && !unk {
			b.checkKeep(bn, k, in)
		}
		bn.n.Keep = bn.st.Keep
		for name := range in {
			bn.n.Scores = append(bn.n.Scores, name)
		}
		sort.Strings(bn.n.Scores)
		out := copyScores(in)
		if m := bn.n.Model; m != nil && m.Desc != nil {
			if cs := m.Desc.Capability(bn.st.Kind.Capability()); cs != nil {
				for _, sc := range cs.Scores {
					out[sc.Name] = bn.st.ID
				}
			}
		} else if bn.n.Model == nil && bn.st.Kind.IsModel() {
			unk = true
		}
		carried[bn], unknown[bn] = out, unk
	}
}

func copyScores(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (b *builder) checkKeep(bn *bnode, k *spec.Keep, in map[string]string) {
	st := bn.st
	if len(bn.inputs) == 0 {
		b.errorf(k.Pos, "keep: filters the items a stage reads; put it on a later stage", "stage %s: keep: a %s stage of its own reads no items", st.Name(), st.Kind)
		return
	}
	if _, ok := in[k.Score]; ok {
		return
	}
	var have []string
	for name := range in {
		have = append(have, name)
	}
	sort.Strings(have)
	what := "its items carry no scores"
	if len(have) > 0 {
		what = "its items carry " + strings.Join(have, ", ")
	}
	b.errorf(k.ScorePos, b.scoreHint(), "stage %s: keep: no stage before it attaches score %q (%s)", st.Name(), k.Score, what)
}

// scoreHint names the stage kinds and models that declare scores.
func (b *builder) scoreHint() string {
	names := b.knownNames()
	var parts []string
	for _, model := range names {
		desc, err, _ := b.describe(model)
		if err != nil || desc == nil {
			continue
		}
		for _, cs := range desc.Capabilities {
			if len(cs.Scores) == 0 {
				continue
			}
			var sc []string
			for _, s := range cs.Scores {
				sc = append(sc, s.Name)
			}
			parts = append(parts, fmt.Sprintf("%s with model %q (%s)", cs.Name, model, strings.Join(sc, ", ")))
		}
	}
	if len(parts) == 0 {
		return "no plugin known here declares scores"
	}
	slices.Sort(parts)
	return "scores come from model stages: " + strings.Join(parts, "; ")
}
