package plan

import (
	"context"
	"errors"
	"sync"

	"github.com/genpipe/genpipe/sdk"
)

// fakeDescriber serves fixed descriptions, like the plugin host would
// after launching each plugin, and records what it was asked.
type fakeDescriber struct {
	mu    sync.Mutex
	calls []string // "model path sha256"
}

func img(c, h, w int) *sdk.ImageSpec {
	return &sdk.ImageSpec{Channels: c, Height: h, Width: w, DType: sdk.Float32, Min: -1, Max: 1}
}

var fakeDescs = map[string]*sdk.Description{
	"edges": {
		Name: "edges", Version: "1.0.0", Doc: "edge and sketch extraction", BatchSize: 32,
		Capabilities: []sdk.CapabilitySpec{{Name: sdk.CapTranslate, Doc: "images to edge maps", Params: []sdk.Param{
			{Name: "method", Type: sdk.String, Doc: "edge operator", Default: "sobel", Enum: []string{"sobel", "canny", "laplace"}},
			{Name: "threshold", Type: sdk.Float, Doc: "edge strength cut-off", Default: 0.1, Min: sdk.Bound(0), Max: sdk.Bound(1)},
			{Name: "invert", Type: sdk.Bool, Doc: "black lines on white", Default: false},
			{Name: "kernel", Type: sdk.Object, Doc: "operator kernel", Fields: []sdk.Param{
				{Name: "size", Type: sdk.Int, Doc: "kernel size", Default: 3, Min: sdk.Bound(1), Max: sdk.Bound(9)}}},
		}}},
		Presets: []sdk.Preset{
			{Name: "default", Default: true, Capabilities: []sdk.Capability{sdk.CapTranslate}, Input: img(0, 0, 0), Output: img(1, 0, 0)},
			{Name: "sketch256", Capabilities: []sdk.Capability{sdk.CapTranslate}, Input: img(3, 256, 256), Output: img(1, 0, 0)},
		},
	},
	"vae": {
		Name: "vae", Version: "0.3.0", Doc: "variational autoencoder",
		Capabilities: []sdk.CapabilitySpec{
			{Name: sdk.CapEncode, Doc: "images to latents"},
			{Name: sdk.CapGenerate, Doc: "latents or noise to images", Params: []sdk.Param{
				{Name: "temperature", Type: sdk.Float, Default: 1.0, Min: sdk.Bound(0), Max: sdk.Bound(2), Doc: "prior scale"}}},
		},
		Presets: []sdk.Preset{
			{Name: "mnist", Default: true, Capabilities: []sdk.Capability{sdk.CapEncode, sdk.CapGenerate}, Input: img(1, 28, 28), Output: img(1, 28, 28), Latent: &sdk.LatentSpec{Space: "vae/mnist-z16", Dim: 16}},
			{Name: "faces", Capabilities: []sdk.Capability{sdk.CapEncode, sdk.CapGenerate}, Input: img(3, 64, 64), Output: img(3, 64, 64), Latent: &sdk.LatentSpec{Space: "vae/faces-z32", Dim: 32}},
		},
	},
	"gan": {
		Name: "gan", Version: "0.1.0", Doc: "generative adversarial networks", BatchSize: 64,
		Capabilities: []sdk.CapabilitySpec{{Name: sdk.CapGenerate, Params: []sdk.Param{
			{Name: "truncation", Type: sdk.Float, Default: 1.0, Min: sdk.Bound(0.1), Max: sdk.Bound(1), Doc: "truncation trick"}}}},
		Presets: []sdk.Preset{
			{Name: "mnist-cgan", Default: true, Capabilities: []sdk.Capability{sdk.CapGenerate}, Output: img(1, 28, 28), Classes: 10},
			{Name: "mnist-dcgan", Capabilities: []sdk.Capability{sdk.CapGenerate}, Output: img(1, 28, 28)},
		},
	},
	"cyclegan": {
		Name: "cyclegan", Version: "0.1.0",
		Capabilities: []sdk.CapabilitySpec{{Name: sdk.CapTranslate, Params: []sdk.Param{
			{Name: "direction", Type: sdk.String, Default: "a2b", Enum: []string{"a2b", "b2a"}, Doc: "which way to translate"}}}},
		Presets: []sdk.Preset{
			{Name: "mnist-typeset", Capabilities: []sdk.Capability{sdk.CapTranslate}, Input: img(1, 28, 28), Output: img(1, 28, 28)},
		},
	},
	"diffusion": {
		Name: "diffusion", Version: "0.1.0",
		Capabilities: []sdk.CapabilitySpec{
			{Name: sdk.CapDenoise, Params: []sdk.Param{
				{Name: "steps", Type: sdk.Int, Default: 50, Min: sdk.Bound(1), Max: sdk.Bound(1000), Doc: "reverse steps"},
				{Name: "schedule", Type: sdk.String, Required: true, Enum: []string{"linear", "cosine"}, Doc: "noise schedule"}}},
			{Name: sdk.CapGenerate},
		},
		Presets: []sdk.Preset{
			{Name: "mnist", Capabilities: []sdk.Capability{sdk.CapDenoise}, Input: img(1, 28, 28), Output: img(0, 0, 0)},
			{Name: "mnist-gen", Capabilities: []sdk.Capability{sdk.CapGenerate}, Output: img(1, 28, 28)},
		},
	},
	"trainonly": {
		Name: "trainonly", Version: "0.1.0",
		Capabilities: []sdk.CapabilitySpec{{Name: sdk.CapTrain}},
	},
	"bare": { // one preset that declares nothing static: nothing to check
		Name: "bare", Version: "0.1.0",
		Capabilities: []sdk.CapabilitySpec{{Name: sdk.CapTranslate}, {Name: sdk.CapEncode}, {Name: sdk.CapGenerate}},
		Presets: []sdk.Preset{{Name: "any", Capabilities: []sdk.Capability{sdk.CapTranslate, sdk.CapEncode, sdk.CapGenerate},
			Input: img(0, 0, 0), Output: img(0, 0, 0), Latent: &sdk.LatentSpec{Space: "bare/z", Dim: 8}}},
	},
	// local is only reachable through a path in plugins:.
	"local": {
		Name: "local", Version: "2.0.0",
		Capabilities: []sdk.CapabilitySpec{{Name: sdk.CapTranslate, Params: []sdk.Param{
			{Name: "strength", Type: sdk.Float, Default: 0.5}}}},
		Presets: []sdk.Preset{{Name: "x", Capabilities: []sdk.Capability{sdk.CapTranslate}, Input: img(3, 0, 0), Output: img(3, 0, 0)}},
	},
}

func (f *fakeDescriber) Describe(_ context.Context, model, path, sha string) (*sdk.Description, error) {
	f.mu.Lock()
	f.calls = append(f.calls, model+" "+path+" "+sha)
	f.mu.Unlock()
	if model == "broken" {
		return nil, errors.New("plugin broken: handshake failed: unexpected output on stdout")
	}
	if model == "local" && path == "" {
		return nil, errors.New("plugin local: not found")
	}
	d, ok := fakeDescs[model]
	if !ok {
		return nil, errors.New("plugin " + model + ": not found")
	}
	return d, nil
}

func (f *fakeDescriber) Known() []string {
	return []string{"bare", "broken", "cyclegan", "diffusion", "edges", "gan", "trainonly", "vae"}
}

func allDescs() []*sdk.Description {
	var out []*sdk.Description
	for _, d := range fakeDescs {
		out = append(out, d)
	}
	return out
}
