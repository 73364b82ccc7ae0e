package plan

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/sdk"
)

// ldm is a latent diffusion plugin: its z16 preset's data are latents of
// the fake vae's mnist preset, z8's those of another space; img trains on
// images, for the opposite check.
var ldm = &sdk.Description{
	Name: "ldm", Version: "0.1.0",
	Capabilities: []sdk.CapabilitySpec{
		{Name: sdk.CapGenerate, Params: []sdk.Param{{Name: "steps", Type: sdk.Int, Default: 50, Doc: "reverse steps"}}},
		{Name: sdk.CapTrain},
	},
	Presets: []sdk.Preset{
		{Name: "z16", Default: true, Capabilities: []sdk.Capability{sdk.CapGenerate, sdk.CapTrain}, Classes: 10,
			LatentData: &sdk.LatentSpec{Space: "vae/mnist-z16", Dim: 16}},
		{Name: "z8", Capabilities: []sdk.Capability{sdk.CapGenerate, sdk.CapTrain},
			LatentData: &sdk.LatentSpec{Space: "other/z8", Dim: 8}},
		{Name: "img", Capabilities: []sdk.Capability{sdk.CapTrain}, Input: img(1, 28, 28)},
	},
}

// ldmDescriber is the fake plugin host with ldm too.
type ldmDescriber struct{ fakeDescriber }

func (d *ldmDescriber) Describe(ctx context.Context, model, path, sha string) (*sdk.Description, error) {
	if model == "ldm" {
		return ldm, nil
	}
	return d.fakeDescriber.Describe(ctx, model, path, sha)
}

func (d *ldmDescriber) Known() []string { return append(d.fakeDescriber.Known(), "ldm") }

// buildLDM plans src against ldmDescriber without looking at files.
func buildLDM(t *testing.T, src string) (*Plan, []string) {
	t.Helper()
	s, errs := spec.Parse("p.yaml", []byte(src), nil)
	if s == nil {
		t.Fatal(errs)
	}
	p, perrs := Build(context.Background(), s, &ldmDescriber{}, Options{SkipFiles: true})
	errs = append(errs, perrs...)
	errs.Sort()
	var lines []string
	for _, e := range errs {
		lines = append(lines, e.Error())
	}
	return p, lines
}

func TestLatentDataValidate(t *testing.T) {
	if errs := sdk.ValidateDescription(*ldm); len(errs) > 0 {
		t.Fatal(errs)
	}
}

// TestLatentGenerate: a generate stage of a preset whose data are latents
// emits latents of its space, which a decoder of that space reads; another
// space, another dim or a save after it is an error at the reading stage.
func TestLatentGenerate(t *testing.T) {
	const head = "version: 1\nname: t\nstages:\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{name: "decoded by the vae of its space", src: head +
			"  - id: lat\n    generate: {model: ldm, count: 4}\n" +
			"  - id: img\n    generate: {model: vae, preset: mnist}\n" +
			"  - id: out\n    save: {dir: out}\n"},
		{name: "another space", src: head +
			"  - id: lat\n    generate: {model: ldm, preset: z8, count: 4}\n" +
			"  - id: img\n    generate: {model: vae, preset: mnist}\n" +
			"  - id: out\n    save: {dir: out}\n",
			want: []string{`p.yaml:7:5: stage "img" (model "vae" preset "mnist") decodes latent space "vae/mnist-z16", got 8-dim latents of space "other/z8" from "lat" (encode and decode with the same model and preset)`}},
		{name: "another dim", src: head +
			"  - id: lat\n    generate: {model: ldm, count: 4}\n" +
			"  - id: img\n    input: lat\n    generate: {model: vae, preset: faces}\n",
			want: []string{`p.yaml:7:12: stage "img" (model "vae" preset "faces") decodes latent space "vae/faces-z32", got 16-dim latents of space "vae/mnist-z16" from "lat" (encode and decode with the same model and preset)`}},
		{name: "saved", src: head +
			"  - id: lat\n    generate: {model: ldm, count: 4}\n" +
			"  - id: out\n    save: {dir: out}\n",
			want: []string{`p.yaml:7:5: stage "out" needs images, got 16-dim latents of space "vae/mnist-z16" from "lat" (decode them to images with a generate stage first)`}},
		{name: "preprocessed", src: head +
			"  - id: lat\n    generate: {model: ldm, count: 4}\n" +
			"  - id: g\n    preprocess: [grayscale]\n",
			want: []string{`p.yaml:7:5: stage "g" needs images, got 16-dim latents of space "vae/mnist-z16" from "lat" (decode them to images with a generate stage first)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, got := buildLDM(t, tc.src)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if p == nil {
				return
			}
			if out := p.Stage("lat").Out; out.Latent == nil || *out.Latent != (sdk.LatentSpec{Space: "vae/mnist-z16", Dim: 16}) || out.Image != nil {
				t.Errorf("lat emits %s, want 16-dim latents of vae/mnist-z16", out)
			}
			if out := p.Stage("img").Out; out.Image == nil {
				t.Errorf("img emits %s, want images", out)
			}
		})
	}
}

// TestLatentTrain: train.input may name a chain through an encode stage;
// a preset whose data are latents gets exactly its space and dim, an
// image preset no latents, and stages that do not map items one to one
// cannot feed training.
func TestLatentTrain(t *testing.T) {
	const head = "version: 1\nname: t\nstages:\n" +
		"  - id: digits\n    load: {idx: train.gz}\n" +
		"  - id: codes\n    encode: {model: vae, preset: mnist}\n" +
		"  - id: faces\n    input: digits\n    encode: {model: vae, preset: faces}\n"
	tests := []struct {
		name, train string
		want        []string
	}{
		{name: "latents of its space", train: "train: {model: ldm, input: codes, eval: codes, output: w.st}\n"},
		{name: "images", train: "train: {model: ldm, input: digits, output: w.st}\n",
			want: []string{`p.yaml:11:28: train.input: model "ldm" preset "z16" trains on 16-dim latents of space "vae/mnist-z16", got images from stage "digits" (name an encode stage whose preset encodes into space "vae/mnist-z16")`}},
		{name: "another space", train: "train: {model: ldm, input: codes, eval: faces, output: w.st}\n",
			want: []string{`p.yaml:11:41: train.eval: model "ldm" preset "z16" trains on 16-dim latents of space "vae/mnist-z16", got 32-dim latents of space "vae/faces-z32" from stage "faces" (name an encode stage whose preset encodes into space "vae/mnist-z16")`}},
		{name: "another preset's space", train: "train: {model: ldm, preset: z8, input: codes, output: w.st}\n",
			want: []string{`p.yaml:11:40: train.input: model "ldm" preset "z8" trains on 8-dim latents of space "other/z8", got 16-dim latents of space "vae/mnist-z16" from stage "codes" (name an encode stage whose preset encodes into space "other/z8")`}},
		{name: "an image preset", train: "train: {model: ldm, preset: img, input: codes, output: w.st}\n",
			want: []string{`p.yaml:11:41: train.input: model "ldm" preset "img" trains on images, got 16-dim latents of space "vae/mnist-z16" from stage "codes"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, got := buildLDM(t, head+tc.train)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if p != nil && p.Train.Input != "codes" {
				t.Errorf("train.input %q", p.Train.Input)
			}
		})
	}
}

// TestTrainChain: the stages between the load and train.input map items
// one to one (preprocess, encode, translate, denoise), each reading one.
func TestTrainChain(t *testing.T) {
	const head = "version: 1\nname: t\nstages:\n" +
		"  - id: digits\n    load: {idx: train.gz}\n"
	tests := []struct {
		name, src string
		want      []string
	}{
		{name: "preprocess, translate, encode", src: head +
			"  - id: small\n    preprocess: [grayscale, {resize: {width: 28, height: 28}}]\n" +
			"  - id: typed\n    translate: {model: cyclegan, preset: mnist-typeset}\n" +
			"  - id: codes\n    encode: {model: vae, preset: mnist}\n" +
			"train: {model: ldm, input: codes, output: w.st}\n"},
		{name: "a generate stage", src: head +
			"  - id: codes\n    encode: {model: vae, preset: mnist}\n" +
			"  - id: lat\n    generate: {model: ldm, count: 4}\n" +
			"train: {model: ldm, input: lat, output: w.st}\n",
			want: []string{`p.yaml:10:28: train.input: stage "lat" is a generate stage; training reads the items of a load stage, optionally through preprocess, encode, translate or denoise stages (name a load, preprocess, encode, translate or denoise stage)`}},
		{name: "a chain through a generate stage", src: head +
			"  - id: codes\n    encode: {model: vae, preset: mnist}\n" +
			"  - id: back\n    generate: {model: vae, preset: mnist}\n" +
			"  - id: again\n    encode: {model: vae, preset: mnist}\n" +
			"train: {model: ldm, input: again, output: w.st}\n",
			want: []string{`p.yaml:12:28: train.input: stage "back" is a generate stage; training reads the items of a load stage, optionally through preprocess, encode, translate or denoise stages (name a load, preprocess, encode, translate or denoise stage)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, got := buildLDM(t, tc.src)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
