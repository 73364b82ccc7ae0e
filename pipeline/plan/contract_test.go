package plan

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/sdk"
)

// upscale declares the size rules and string checks these tests plan
// against; upDescriber serves it, reached through a path in plugins: (see
// upHead).
var upscale = func() *sdk.Description {
	out := func(z sdk.Size) *sdk.ImageSpec {
		s := img(1, 0, 0)
		s.Size = z
		return s
	}
	return &sdk.Description{
		Name: "upscale", Version: "1.0.0",
		Capabilities: []sdk.CapabilitySpec{{Name: sdk.CapTranslate, Params: []sdk.Param{
			{Name: "fill", Type: sdk.String, Default: "#000000", Format: sdk.FormatColor, Doc: "padding colour"},
			{Name: "every", Type: sdk.String, Format: sdk.FormatDuration, Doc: "log interval"},
			{Name: "tag", Type: sdk.String, Pattern: `[a-z]+(-[a-z]+)*`, Doc: "a name"},
			{Name: "tags", Type: sdk.List, Elem: &sdk.Param{Type: sdk.String, Pattern: `v[0-9]+`}, Doc: "names"},
		}}},
		Presets: []sdk.Preset{
			{Name: "x2", Default: true, Capabilities: []sdk.Capability{sdk.CapTranslate}, Input: img(1, 0, 0), Output: out(sdk.ScaleSize(2, 1))},
			{Name: "half", Capabilities: []sdk.Capability{sdk.CapTranslate}, Input: img(1, 0, 0), Output: out(sdk.ScaleSize(1, 2))},
			{Name: "pad8", Capabilities: []sdk.Capability{sdk.CapTranslate}, Input: img(1, 0, 0), Output: out(sdk.AnySize)},
			{Name: "same", Capabilities: []sdk.Capability{sdk.CapTranslate}, Input: img(1, 0, 0), Output: out(sdk.SameSize)},
		},
	}
}()

// upDescriber is the fake plugin host with upscale too.
type upDescriber struct{ fakeDescriber }

func (d *upDescriber) Describe(ctx context.Context, model, path, sha string) (*sdk.Description, error) {
	if model == "upscale" {
		return upscale, nil
	}
	return d.fakeDescriber.Describe(ctx, model, path, sha)
}

// build plans src with describer d and returns every message, sorted.
func build(t *testing.T, d Describer, src string, overrides []string) (*Plan, []string) {
	t.Helper()
	s, errs := spec.Parse("p.yaml", []byte(src), overrides)
	p, perrs := Build(context.Background(), s, d, Options{})
	errs = append(errs, perrs...)
	errs.Sort()
	var lines []string
	for _, e := range errs {
		lines = append(lines, e.Error())
	}
	return p, lines
}

const upHead = "version: 1\nname: t\nplugins:\n  upscale: {path: bin/pipeline-plugin-local}\nstages:\n" +
	"  - id: a\n    load: {dir: photos}\n"

// gray is a preprocess stage making 1-channel n x n images.
func gray(n int) string {
	return fmt.Sprintf("  - id: g\n    preprocess: [grayscale, {resize: {width: %d, height: %d}}]\n", n, n)
}

// TestSizeRulesPropagate: the planner applies each model's size rule to
// the size it receives, so a chain is checked end to end.
func TestSizeRulesPropagate(t *testing.T) {
	tests := []struct {
		name string
		src  string
		outs map[string]string // stage -> its contract
		want []string
	}{
		{name: "scale x2 feeds a 28x28 model", src: upHead + gray(14) +
			"  - id: up\n    translate: {model: upscale}\n  - id: c\n    translate: {model: cyclegan, preset: mnist-typeset}\n",
			outs: map[string]string{"up": "1-channel 28x28 images", "c": "1-channel 28x28 images"}},
		{name: "scale x2 twice, then halved", src: upHead + gray(7) +
			"  - id: up\n    translate: {model: upscale}\n  - id: up2\n    translate: {model: upscale, preset: x2}\n  - id: up3\n    translate: {model: upscale}\n  - id: down\n    translate: {model: upscale, preset: half}\n  - id: c\n    translate: {model: cyclegan, preset: mnist-typeset}\n",
			outs: map[string]string{"up": "1-channel 14x14 images", "up3": "1-channel 56x56 images", "down": "1-channel 28x28 images"}},
		{name: "same keeps the size", src: upHead + gray(28) +
			"  - id: s\n    translate: {model: upscale, preset: same}\n  - id: c\n    translate: {model: cyclegan, preset: mnist-typeset}\n",
			outs: map[string]string{"s": "1-channel 28x28 images"}},
		{name: "scale x2 into a 28x28 model is a mismatch", src: upHead + gray(28) +
			"  - id: up\n    translate: {model: upscale}\n  - id: c\n    translate: {model: cyclegan, preset: mnist-typeset, conform: off}\n",
			want: []string{`p.yaml:13:57: stage "c" (model "cyclegan" preset "mnist-typeset") expects 1-channel 28x28 images, got 1-channel 56x56 images from "up", which scales its input x2; conform is off (remove conform: off to let the host conform the images, or - resize: {width: 28, height: 28} in a preprocess stage before it)`}},
		{name: "half into a 28x28 model is a mismatch", src: upHead + gray(28) +
			"  - id: d\n    translate: {model: upscale, preset: half}\n  - id: c\n    translate: {model: cyclegan, preset: mnist-typeset, conform: off}\n",
			want: []string{`p.yaml:13:57: stage "c" (model "cyclegan" preset "mnist-typeset") expects 1-channel 28x28 images, got 1-channel 14x14 images from "d", which scales its input x1/2; conform is off (remove conform: off to let the host conform the images, or - resize: {width: 28, height: 28} in a preprocess stage before it)`}},
		// any: the size is known only when the model runs, so the 28x28
		// model after it cannot be checked here (the host checks it).
		{name: "any is unknown until run time", src: upHead + gray(28) +
			"  - id: p\n    translate: {model: upscale, preset: pad8}\n  - id: c\n    translate: {model: cyclegan, preset: mnist-typeset}\n",
			outs: map[string]string{"p": "1-channel images", "c": "1-channel 28x28 images"}},
		// An unknown input size stays unknown through scale.
		{name: "scale of an unknown size", src: upHead + "  - id: g\n    preprocess: [grayscale]\n" +
			"  - id: up\n    translate: {model: upscale}\n  - id: c\n    translate: {model: cyclegan, preset: mnist-typeset}\n",
			outs: map[string]string{"up": "1-channel images"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			workdir(t)
			p, got := build(t, &upDescriber{}, tc.src, nil)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for id, want := range tc.outs {
				if got := p.Stage(id).Out.String(); got != want {
					t.Errorf("stage %s emits %s, want %s", id, got, want)
				}
			}
		})
	}
}

// TestStringPatternsAndFormats: values that break a plugin's declared
// pattern or format are reported at the value, expected vs got.
func TestStringPatternsAndFormats(t *testing.T) {
	workdir(t)
	src := upHead +
		"  - id: ok\n    input: a\n    translate: {model: upscale, fill: \"#fa0\", every: 1m30s, tag: fine-name, tags: [v1, v22]}\n" +
		"  - id: bad\n    input: a\n    translate: {model: upscale, fill: orange, every: \"10\", tag: Bad_Name, tags: [v1, x2]}\n"
	_, got := build(t, &upDescriber{}, src, []string{"ok.fill='#12345'"})
	want := []string{
		`--set ok.fill: translate.fill: expected a color (#rgb or #rrggbb), got "#12345"`,
		`p.yaml:13:39: translate.fill: expected a color (#rgb or #rrggbb), got "orange"`,
		`p.yaml:13:54: translate.every: expected a duration (such as "300ms", "1.5s" or "2h45m"), got "10"`,
		`p.yaml:13:65: translate.tag: expected a string matching [a-z]+(-[a-z]+)*, got "Bad_Name"`,
		`p.yaml:13:86: translate.tags[1]: expected a string matching v[0-9]+, got "x2"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// pinDescriber fails like the plugin host does for an executable whose
// sha256 is not the pinned one.
type pinDescriber struct{ fakeDescriber }

type mismatch struct{ msg string }

func (e *mismatch) Error() string          { return e.msg }
func (e *mismatch) ChecksumMismatch() bool { return true }

func (d *pinDescriber) Describe(ctx context.Context, model, path, sha string) (*sdk.Description, error) {
	if model == "local" && sha != "" {
		return nil, fmt.Errorf("wrapped: %w", &mismatch{"plugin local: checksum mismatch for " + path + ": the pipeline pins sha256:" + sha + " but the file has sha256:00ff; refusing to start it"})
	}
	return d.fakeDescriber.Describe(ctx, model, path, sha)
}

// TestChecksumMismatchAtThePin: a pinned plugin whose executable has
// another sha256 is reported once, at the sha256: value, not at every
// stage's model:.
func TestChecksumMismatchAtThePin(t *testing.T) {
	dir := workdir(t)
	pin := strings.Repeat("ab", 32)
	src := "version: 1\nname: t\nplugins:\n  local:\n    path: bin/pipeline-plugin-local\n    sha256: " + pin + "\nstages:\n" +
		"  - id: a\n    load: {dir: photos}\n  - id: b\n    translate: {model: local}\n  - id: c\n    input: a\n    translate: {model: local}\n"
	_, got := build(t, &pinDescriber{}, src, nil)
	want := []string{"p.yaml:6:13: plugins.local.sha256: wrapped: plugin local: checksum mismatch for " + dir + "/bin/pipeline-plugin-local: the pipeline pins sha256:" + pin +
		" but the file has sha256:00ff; refusing to start it (if the new executable is trusted, pin the sha256 it has)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestSchemaPatterns: declared patterns and formats reach the JSON Schema,
// anchored, so editors flag the same values validate does.
func TestSchemaPatterns(t *testing.T) {
	data, err := Schema([]*sdk.Description{upscale})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("s.json", inst); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("s.json")
	if err != nil {
		t.Fatal(err)
	}
	const base = "version: 1\nname: t\nstages:\n  - id: a\n    load: {dir: x}\n  - id: t\n    translate: {model: upscale, "
	for src, valid := range map[string]bool{
		`fill: "#fa0", every: 1m30s, tag: fine-name, tags: [v1, v22]}`: true,
		`fill: "#A0B0C0"}`: true,
		`fill: orange}`:    false,
		`fill: "#12345"}`:  false,
		`every: "10"}`:     false,
		`tag: Bad_Name}`:   false,
		`tag: ok-1}`:       false, // anchored: "ok-" would match inside
		`tags: [v1, x2]}`:  false,
	} {
		err := sch.Validate(yamlInstance(t, []byte(base+src+"\n")))
		if (err == nil) != valid {
			t.Errorf("%s: valid %v, schema says %v", src, valid, err)
		}
	}
}
