// Package item owns the unit of data that flows between pipeline stages: an
// 8-bit image, a model's float32 pixels kept until a host stage needs 8 bits
// ([Item.WithPixels]), or latents with their space id, plus the item's
// metadata and provenance; and the conversion of items to and from the
// tensors that cross the plugin boundary.
package item

import (
	"image"

	"github.com/genpipe/genpipe/sdk"
)

// Item is one image (or one latent) with its metadata. Host stages work on
// 8-bit pixels (Image, Frames), which they get from [Item.WithPixels]; model
// stages convert items to and from the tensor contract their plugin declares
// at the boundary, and keep a float32 output as Tensor, so chained float
// models never pass through 8 bits in between.
type Item struct {
	// Index is the item's position in the job's stream, fixed at its source
	// and kept through every stage (also under --shard).
	Index int
	// Name is a stable identifier for output file names and resume: the
	// source file's path relative to the load root without extension, or the
	// zero-padded index for generated items.
	Name string
	// Source is the file the item was read from ("" for generated items);
	// for idx files it is "file.idx#N".
	Source string
	// Label is the class label (-1: none).
	Label int
	// Seed is the seed of the stage currently processing the item, derived
	// from (pipeline seed, stage id, item index).
	Seed uint64
	// Image holds the 8-bit pixels; nil for a latent item and while the
	// pixels are in Tensor.
	Image image.Image
	// Frames holds an animation (a sequence item); Image is then its last frame.
	Frames []image.Image
	// Latent holds a 1 x D latent with its Space set; nil for image items.
	Latent *sdk.Tensor
	// Tensor holds the pixels as a model stage made them when it emitted
	// float32: one image, 1 x C x H x W, with values in Range. Image and
	// Frames are then nil; [Item.WithPixels] quantises it to 8 bits for a
	// host stage, and [ToTensor] maps it to the next model's float range
	// without rounding to 8 bits. Never modified in place (fan-out branches
	// share it).
	Tensor *sdk.Tensor
	// Range is the value range [lo, hi] of Tensor's values: the one the
	// producing model declared (see [ValueRange]).
	Range [2]float32
	// Prov records every stage that made or changed the item.
	Prov []Step
	// Scores are the per-item scores model stages attached (a flow's
	// bits_per_dim), by the name the capability declares. A later stage
	// attaching a score of the same name replaces the value here (a keep:
	// downstream reads the latest); each stage's own values stay in its
	// provenance step. Never modified in place (fan-out branches share it):
	// see [Item.WithScores].
	Scores map[string]float64
	// Raw is what a source listed for the item before the heavy work of
	// making it (e.g. a file entry still to decode on a worker); nil after.
	Raw any
}

// Step is one provenance record.
type Step struct {
	Stage   string `json:"stage"`
	Kind    string `json:"kind"`
	Plugin  string `json:"plugin,omitempty"`
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Preset  string `json:"preset,omitempty"`
	Weights string `json:"weights,omitempty"`
	Seed    uint64 `json:"seed,omitempty"`
	// Params are the stage's effective parameters.
	Params map[string]any `json:"params,omitempty"`
	// Scores are the per-item scores this stage attached.
	Scores map[string]float64 `json:"scores,omitempty"`
}

// With returns a copy of it with step appended to its provenance; the copy
// does not share the provenance slice, so fan-out branches stay independent.
func (it Item) With(step Step) Item {
	prov := make([]Step, len(it.Prov), len(it.Prov)+1)
	copy(prov, it.Prov)
	it.Prov = append(prov, step)
	return it
}

// WithScores returns a copy of it whose Scores hold scores over (replacing)
// the ones it had; the copy does not share the map.
func (it Item) WithScores(scores map[string]float64) Item {
	if len(scores) == 0 {
		return it
	}
	m := make(map[string]float64, len(it.Scores)+len(scores))
	for k, v := range it.Scores {
		m[k] = v
	}
	for k, v := range scores {
		m[k] = v
	}
	it.Scores = m
	return it
}
