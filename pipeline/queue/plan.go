package queue

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/genpipe/genpipe/pipeline/blobstore"
	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
)

// CheckQueueable says why a plan cannot run through the queue, or nil:
// items must be independent (each source item's outputs are its own), so
// a job has one source stage, no save that gathers items into one file
// (grid), and no training.
func CheckQueueable(p *plan.Plan) error {
	if p.Train != nil {
		return fmt.Errorf("queue: the file has a train: section; train runs on one machine (pipeline train)")
	}
	var sources []string
	for _, st := range p.Stages {
		if len(st.Inputs) == 0 {
			sources = append(sources, st.ID)
		}
		if st.Kind == spec.Save {
			if v, ok := st.Values.(map[string]any); ok && v["grid"] != nil {
				return fmt.Errorf("queue: stage %q saves a grid, which gathers every item into one file; the queue runs items independently", st.ID)
			}
		}
	}
	if len(sources) != 1 {
		return fmt.Errorf("queue: the queue runs pipelines with one source stage (load or generate), this one has %d: %s", len(sources), strings.Join(sources, ", "))
	}
	return nil
}

// Source is the id of the plan's one source stage.
func Source(p *plan.Plan) string {
	for _, st := range p.Stages {
		if len(st.Inputs) == 0 {
			return st.ID
		}
	}
	return ""
}

// Paths lists the files and folders a plan reads or writes: load sources,
// save folders and weights files, absolute; a blob URL as it is given
// (a file:// URL as its folder).
func Paths(p *plan.Plan) []string {
	abs := func(s string) string {
		if blobstore.IsBlob(s) {
			return s
		}
		s = blobstore.LocalPath(s)
		if filepath.IsAbs(s) {
			return filepath.Clean(s)
		}
		return filepath.Join(p.BaseDir, s)
	}
	var out []string
	for _, st := range p.Stages {
		switch st.Kind {
		case spec.Load:
			if c, ok := st.Config.(*stages.LoadConfig); ok {
				for _, k := range []string{"dir", "list", "idx", "idx_labels"} {
					if s := c.Values.String(k); s != "" {
						out = append(out, abs(s))
					}
				}
			}
		case spec.Save:
			if v, ok := st.Values.(map[string]any); ok {
				if s, _ := v["dir"].(string); s != "" {
					out = append(out, abs(s))
				}
			}
		}
		if st.Model != nil && st.Model.Weights != "" {
			out = append(out, st.Model.Weights)
		}
	}
	return out
}
