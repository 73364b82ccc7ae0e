package stages

import (
	"path/filepath"
	"slices"
	"sync"

	"github.com/genpipe/genpipe/pipeline/run"
	"github.com/genpipe/genpipe/sdk"
)

// Kind declares a stage kind once: its parameters (from which the planner
// validates, and docs and the JSON Schema are built), how its validated
// value is parsed into the typed config the plan stores, and, through that
// config, the executor stage it runs as. Host kinds (load, preprocess,
// save) and model kinds (encode, generate, translate, denoise) are entries
// of one registry; the planner and the executor loop over it instead of
// switching on kind names.
type Kind struct {
	Name string
	// Param declares the stage's value as the host reads it: for a host
	// kind the whole value; for a model kind an Object with the host keys
	// (model, preset, weights, batch, ...), to which each plugin adds its
	// own parameters for the capability of the kind's name.
	Param sdk.Param
	// Model is set for the kinds a plugin runs.
	Model bool
	// Parse turns a host kind's validated value (sdk.CheckParams' output
	// for Param) into its config, checking what CheckParams cannot; error
	// paths are relative to the value. Nil for model kinds, whose
	// resolution (model, preset, weights, plugin parameters) is the
	// planner's, shared by all of them.
	Parse func(v any, env ParseEnv) (Config, []*sdk.ParamError)
	// NeedsConsumer says Parse needs the image contract of the model
	// stages the stage feeds (ParseEnv.Consumer): the planner calls it once
	// the graph is known.
	NeedsConsumer bool
	// Sink is set for kinds that emit nothing (save).
	Sink bool
}

// Capability is the plugin capability that serves a model kind.
func (k *Kind) Capability() sdk.Capability { return sdk.Capability(k.Name) }

// ParseEnv is what parsing a stage's value may need besides the value.
type ParseEnv struct {
	// BaseDir is the pipeline file's folder (absolute), against which
	// relative paths resolve.
	BaseDir string
	// SkipFiles skips the checks that files named by the stage exist.
	SkipFiles bool
	// Partial is set when some fields failed sdk.CheckParams and are
	// missing from the value: only checks of single fields that are there
	// may run (the planner reports the rest).
	Partial bool
	// Consumer is the image contract of the model stages the stage feeds
	// (nil when none declares one), for kinds with NeedsConsumer.
	Consumer *sdk.ImageSpec
}

func (e ParseEnv) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(e.BaseDir, p)
}

// RelHint is the hint of errors about files named in the pipeline file.
const RelHint = "paths are relative to the pipeline file's folder"

// Config is a host stage's typed configuration, parsed once by the planner
// and stored in the plan; the executor gets its stage from it.
type Config interface {
	// Task makes the executor task (its source, map or sink) that runs
	// this configuration.
	Task(env Env) (*run.Task, error)
}

// Env is what making an executor stage needs besides the config.
type Env struct {
	// ID is the stage id; BaseDir the pipeline file's folder.
	ID      string
	BaseDir string
	// Workers sizes the stage's worker pool.
	Workers int
	// Save holds what save stages record and how they write; its Stage
	// is set from ID.
	Save SaveOptions
}

// kinds is the registry. It is built on first use, after every init
// function has registered its preprocess ops.
var kinds = sync.OnceValue(func() []*Kind {
	return []*Kind{
		{Name: "load", Param: LoadParam, Parse: func(v any, env ParseEnv) (Config, []*sdk.ParamError) {
			c, errs := ParseLoad(v, env)
			return orNil(c), errs
		}},
		{Name: "preprocess", Param: PreprocessParam(), NeedsConsumer: true, Parse: func(v any, env ParseEnv) (Config, []*sdk.ParamError) {
			ops, _ := v.([]any)
			c, errs := ParsePreprocess(ops, env.Consumer)
			return orNil(c), errs
		}},
		modelKind("encode", "map images to latents with a plugin model"),
		modelKind("generate", "make images with a plugin model: from noise (count), for labels, or by decoding latents from its input"),
		modelKind("translate", "map images of one domain to another with a plugin model"),
		modelKind("denoise", "remove noise from images with a plugin model"),
		{Name: "save", Param: SaveParam, Sink: true, Parse: func(v any, env ParseEnv) (Config, []*sdk.ParamError) {
			c, errs := ParseSave(v, env)
			return orNil(c), errs
		}},
	}
})

// orNil keeps a nil *T from becoming a non-nil Config.
func orNil[T any, P interface {
	*T
	Config
}](c P) Config {
	if c == nil {
		return nil
	}
	return c
}

// Kinds returns the stage kinds in the order docs present them.
func Kinds() []*Kind { return slices.Clone(kinds()) }

// LookupKind returns the kind called name, or nil.
func LookupKind(name string) *Kind {
	for _, k := range kinds() {
		if k.Name == name {
			return k
		}
	}
	return nil
}

func modelKind(name, doc string) *Kind {
	return &Kind{Name: name, Model: true, Param: sdk.Param{Name: name, Type: sdk.Object, Doc: doc, Fields: modelHostFields(name)}}
}

// modelHostFields are the keys of a model stage's mapping that the host
// reads itself; every other key is a parameter of the plugin.
func modelHostFields(kind string) []sdk.Param {
	ps := []sdk.Param{
		{Name: "model", Type: sdk.String, Required: true, Doc: "the plugin that runs this stage (see pipeline plugins list)"},
		{Name: "preset", Type: sdk.String, Doc: "named weights the plugin ships (default: the plugin's default preset)"},
		{Name: "weights", Type: sdk.String, Doc: "safetensors weights file, relative to the pipeline file; overrides the preset's weights"},
		{Name: "batch", Type: sdk.Int, Min: sdk.Bound(1), Doc: "items per plugin call (default: the plugin's preference, else 16)"},
	}
	if kind != "generate" { // generate reads latents or nothing, never images
		ps = append(ps, ConformParam)
	}
	if kind == "translate" || kind == "denoise" { // their outputs are images of their inputs
		ps = append(ps, RestoreParam)
	}
	if kind == "generate" {
		ps = append(ps,
			sdk.Param{Name: "count", Type: sdk.Int, Min: sdk.Bound(1), Doc: "number of images to generate from noise; required unless the input is latents"},
			sdk.Param{Name: "labels", Type: sdk.List, Enum: []string{"each", "random"},
				Elem: &sdk.Param{Name: "label", Type: sdk.Int, Min: sdk.Bound(0)},
				Doc:  "class labels for a conditional model: a list (item i gets labels[i mod len]), one label for all, each (0, 1, ..., classes-1, repeating) or random (each item's label drawn uniformly from the classes by its seed: samples of the model's distribution over all classes)"},
		)
	}
	return ps
}
