package plan

import (
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
)

// DefaultBatch is the batch size of a model stage when neither the stage
// nor the plugin's description gives one.
const DefaultBatch = 16

// HostParams returns the declared spec of a stage kind's value as the host
// reads it (see [stages.Kind.Param]): for load, preprocess and save the
// whole value; for the model kinds an Object with the host keys model,
// preset, weights, batch (and count, labels for generate), to which each
// plugin adds its own parameters. Unknown kinds give the zero Param. Docs
// and the JSON Schema are built from these, so they match what the planner
// checks.
func HostParams(kind string) sdk.Param {
	if k := stages.LookupKind(kind); k != nil {
		return k.Param
	}
	return sdk.Param{}
}

// StageParams returns the keys every stage has besides its kind: id,
// input and keep (for docs).
func StageParams() []sdk.Param {
	return []sdk.Param{
		{Name: "id", Type: sdk.String, Required: true, Doc: "the stage's name: letters, digits, - and _; used by input:, --set ID.KEY=VALUE and file names"},
		{Name: "input", Type: sdk.List, Elem: &sdk.Param{Name: "id", Type: sdk.String}, Doc: "the stage(s) this stage reads, one id or a list (default: the previous stage; load and generate with count read nothing)"},
		{Name: "keep", Type: sdk.Object, Doc: "keep only the items whose score passes a threshold, before this stage reads them (the others are dropped and counted, not failed); the score must come from a model stage before this one (see the SCORE lines of pipeline plugins describe)", Fields: []sdk.Param{
			{Name: "score", Type: sdk.String, Required: true, Doc: "the score's name, e.g. bits_per_dim"},
			{Name: "above", Type: sdk.Float, Doc: "keep items whose score is greater than this"},
			{Name: "below", Type: sdk.Float, Doc: "keep items whose score is less than this"},
		}},
	}
}
