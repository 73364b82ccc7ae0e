package stages

import (
	"slices"
	"strings"

	"github.com/genpipe/genpipe/pipeline/run"
	"github.com/genpipe/genpipe/sdk"
)

// SaveConfig is a save stage's checked configuration (see [ParseSave]).
type SaveConfig struct {
	// Values are the validated parameters, defaults filled in.
	Values Values
	// parsed holds the settings parsed once from Values; each Task opens
	// its own Saver from them.
	parsed *Saver
}

// ParseSave checks a save stage's validated values (what sdk.CheckParams
// returned for [SaveParam]) with [CheckSave]. With env.Partial only the
// checks of single fields that are there run.
func ParseSave(v any, env ParseEnv) (*SaveConfig, []*sdk.ParamError) {
	params, _ := v.(map[string]any)
	parsed, errs := parseSave(params)
	if env.Partial {
		errs = slices.DeleteFunc(errs, func(e *sdk.ParamError) bool {
			return !slices.Contains(singleFieldSaveChecks, e.Path) || !hasPath(params, e.Path)
		})
	}
	if len(errs) > 0 || env.Partial {
		return nil, errs
	}
	return &SaveConfig{Values: params, parsed: parsed}, nil
}

// singleFieldSaveChecks are the paths of CheckSave's errors that depend on
// that field alone.
var singleFieldSaveChecks = []string{"dir", "name", "grid.file", "grid.background", "animation.file"}

// hasPath reports whether the dotted path exists in m.
func hasPath(m map[string]any, path string) bool {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = mm[k]; !ok {
			return false
		}
	}
	return true
}

// Task makes the save sink.
func (c *SaveConfig) Task(env Env) (*run.Task, error) {
	opt := env.Save
	opt.Stage = env.ID
	s, err := c.parsed.open(c.Values.String("dir"), env.BaseDir, opt)
	if err != nil {
		return nil, err
	}
	return &run.Task{Sink: SaveSink{s}, Workers: env.Workers}, nil
}
