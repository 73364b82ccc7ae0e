package plan

import (
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
)

// DefaultBatch is the batch size of a model stage when neither the stage
// nor the plugin's description gives one.
const DefaultBatch = 16

var kindDocs = map[spec.Kind]string{
	spec.Encode:    "map images to latents with a plugin model",
	spec.Generate:  "make images with a plugin model: from noise (count), for labels, or by decoding latents from its input",
	spec.Translate: "map images of one domain to another with a plugin model",
	spec.Denoise:   "remove noise from images with a plugin model",
}

// modelHostFields are the keys of a model stage's mapping that the host
// reads itself; every other key is a parameter of the plugin.
func modelHostFields(kind spec.Kind) []sdk.Param {
	ps := []sdk.Param{
		{Name: "model", Type: sdk.String, Required: true, Doc: "the plugin that runs this stage (see pipeline plugins list)"},
		{Name: "preset", Type: sdk.String, Doc: "named weights the plugin ships (default: the plugin's default preset)"},
		{Name: "weights", Type: sdk.String, Doc: "safetensors weights file, relative to the pipeline file; overrides the preset's weights"},
		{Name: "batch", Type: sdk.Int, Min: sdk.Bound(1), Doc: "items per plugin call (default: the plugin's preference, else 16)"},
	}
	if kind == spec.Generate {
		ps = append(ps,
			sdk.Param{Name: "count", Type: sdk.Int, Min: sdk.Bound(1), Doc: "number of images to generate from noise; required unless the input is latents"},
			sdk.Param{Name: "labels", Type: sdk.List, Enum: []string{"each"},
				Elem: &sdk.Param{Name: "label", Type: sdk.Int, Min: sdk.Bound(0)},
				Doc:  "class labels for a conditional model: a list (item i gets labels[i mod len]), one label for all, or each (0, 1, ..., classes-1, repeating)"},
		)
	}
	return ps
}

// HostParams returns the declared spec of a stage kind's value as the host
// reads it: for load, preprocess and save the whole value (from package
// stages); for the model kinds an Object with the host keys model, preset,
// weights, batch (and count, labels for generate), to which each plugin adds
// its own parameters. Unknown kinds give the zero Param. Docs and the JSON
// Schema are built from these, so they match what the planner checks.
func HostParams(kind string) sdk.Param {
	switch k := spec.Kind(kind); k {
	case spec.Load:
		return stages.LoadParam
	case spec.Preprocess:
		return stages.PreprocessParam
	case spec.Save:
		return stages.SaveParam
	case spec.Encode, spec.Generate, spec.Translate, spec.Denoise:
		return sdk.Param{Name: kind, Type: sdk.Object, Doc: kindDocs[k], Fields: modelHostFields(k)}
	}
	return sdk.Param{}
}

// StageParams returns the keys every stage has besides its kind: id and
// input (for docs).
func StageParams() []sdk.Param {
	return []sdk.Param{
		{Name: "id", Type: sdk.String, Required: true, Doc: "the stage's name: letters, digits, - and _; used by input:, --set ID.KEY=VALUE and file names"},
		{Name: "input", Type: sdk.List, Elem: &sdk.Param{Name: "id", Type: sdk.String}, Doc: "the stage(s) this stage reads, one id or a list (default: the previous stage; load and generate with count read nothing)"},
	}
}
