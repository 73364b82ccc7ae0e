package plan

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
)

func TestPlanFields(t *testing.T) {
	dir := workdir(t)
	sum := "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
	src := `version: 1
name: fields
seed: 42
plugins:
  local: {path: bin/pipeline-plugin-local, sha256: ` + sum + `}
stages:
  - id: out
    input: paint
    save: {dir: o}
  - id: photos
    load: {dir: photos}
  - id: paint
    input: photos
    translate: {model: local, weights: w.safetensors}
  - id: digits
    generate: {model: gan, count: 5, labels: [1, 2]}
  - id: more
    generate: {model: gan, batch: 3, count: 2, labels: each}
  - id: plain
    generate: {model: gan, preset: mnist-dcgan, count: 1}
  - id: all
    input: [digits, more, plain]
    save: {dir: o2, name: "{stage}-{name}"}
`
	p, errs, d := check(t, src, []string{"paint.strength=0.25"}, Options{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if p.Name != "fields" || p.Seed != 42 || p.File != "p.yaml" || p.BaseDir != dir || len(p.SHA256) != 64 || !reflect.DeepEqual(p.Overrides, []string{"paint.strength=0.25"}) {
		t.Errorf("plan header %q %d %q %q %q %v", p.Name, p.Seed, p.File, p.BaseDir, p.SHA256, p.Overrides)
	}
	var order []string
	for _, n := range p.Stages {
		order = append(order, n.ID)
	}
	// Inputs first, otherwise file order.
	if want := []string{"photos", "paint", "out", "digits", "more", "plain", "all"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	paint := p.Stage("paint").Model
	if paint.Path != filepath.Join(dir, "bin/pipeline-plugin-local") || paint.SHA256 != "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789" {
		t.Errorf("path %q sha %q", paint.Path, paint.SHA256)
	}
	if paint.Weights != filepath.Join(dir, "w.safetensors") || paint.Preset != "x" || paint.Batch != DefaultBatch || paint.Params.Float("strength") != 0.25 {
		t.Errorf("paint %+v", paint)
	}
	if !slices.Contains(d.calls, "local "+paint.Path+" "+paint.SHA256) {
		t.Errorf("describe calls %v", d.calls)
	}
	if n := slices.Index(d.calls, "gan  "); n < 0 || slices.Index(d.calls[n+1:], "gan  ") >= 0 {
		t.Errorf("gan should be described exactly once: %v", d.calls)
	}
	digits, more, plain := p.Stage("digits").Model, p.Stage("more").Model, p.Stage("plain").Model
	if digits.Batch != 64 || digits.Count != 5 || !slices.Equal(digits.Labels, []int{1, 2}) || digits.Each || digits.Preset != "mnist-cgan" {
		t.Errorf("digits %+v", digits)
	}
	if more.Batch != 3 || !more.Each || more.Labels != nil || plain.Labels != nil || plain.Each || plain.Preset != "mnist-dcgan" {
		t.Errorf("more %+v plain %+v", more, plain)
	}
	if got := p.Stage("all").Inputs; !slices.Equal(got, []string{"digits", "more", "plain"}) {
		t.Errorf("all inputs %v", got)
	}
	if got := p.Consumers("photos"); len(got) != 1 || got[0].ID != "paint" {
		t.Errorf("consumers of photos: %v", got)
	}
	if p.Stage("photos").Inputs != nil || p.Stage("digits").Inputs != nil {
		t.Error("sources have inputs")
	}
	if out := p.Stage("all").Out; out.Image != nil || out.Latent != nil {
		t.Errorf("save emits %v", out)
	}
	host := sdk.Params(p.Stage("out").Values.(map[string]any))
	if host.String("format") != "png" || host.Int("quality") != 95 {
		t.Errorf("save defaults not filled: %v", host)
	}

	seed := uint64(9)
	p, errs, _ = check(t, src, nil, Options{Seed: &seed})
	if len(errs) > 0 || p.Seed != 9 {
		t.Errorf("--seed: %v %v", p.Seed, errs)
	}
}

func TestDefaultInputs(t *testing.T) {
	workdir(t)
	src := head + `  - id: a
    load: {dir: photos}
  - id: b
    preprocess: [grayscale]
  - id: g
    generate: {model: gan, count: 3}
  - id: c
    translate: {model: edges}
  - id: s
    save: {dir: o}
`
	p, errs, _ := check(t, src, nil, Options{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := map[string][]string{"a": nil, "b": {"a"}, "g": nil, "c": {"g"}, "s": {"c"}}
	for id, in := range want {
		if got := p.Stage(id).Inputs; !slices.Equal(got, in) {
			t.Errorf("%s reads %v, want %v", id, got, in)
		}
	}
	if ci := p.Stage("b").ConsumerInput; ci != nil {
		t.Errorf("b feeds no model, consumer %v", ci)
	}
	if got := p.Stage("b").Out.String(); got != "1-channel images" {
		t.Errorf("b out %q", got)
	}
	if got := p.Stage("c").Out.String(); got != "1-channel 28x28 images" {
		t.Errorf("c out %q", got)
	}
}

// TestDefaultPresetPerCapability: a stage naming no preset gets the
// plugin's default preset, or the first preset that serves its kind when
// the default does not.
func TestDefaultPresetPerCapability(t *testing.T) {
	workdir(t)
	src := head + "  - id: g\n    generate: {model: diffusion, count: 1}\n  - id: d\n    denoise: {model: diffusion, schedule: linear}\n  - id: v\n    input: g\n    encode: {model: vae}\n"
	p, errs, _ := check(t, src, nil, Options{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for id, want := range map[string]string{"g": "mnist-gen", "d": "mnist", "v": "mnist"} {
		if got := p.Stage(id).Model.Preset; got != want {
			t.Errorf("%s: preset %q, want %q", id, got, want)
		}
	}
	if got := p.Stage("v").Out.String(); got != `16-dim latents of space "vae/mnist-z16"` {
		t.Errorf("v out %s", got)
	}
}

func TestSkipFiles(t *testing.T) {
	workdir(t)
	src := "version: 1\nname: t\nplugins:\n  local: {path: nowhere}\nstages:\n  - id: a\n    load: {dir: nothing}\n  - id: b\n    translate: {model: local, weights: none.safetensors}\n"
	if _, errs, _ := check(t, src, nil, Options{SkipFiles: true}); len(errs) > 0 {
		t.Errorf("SkipFiles: %v", errs)
	}
	if _, errs, _ := check(t, src, nil, Options{}); len(errs) != 3 {
		t.Errorf("want 3 missing files, got %v", errs)
	}
}

func TestBuildNilSpec(t *testing.T) {
	p, errs := Build(context.Background(), nil, &fakeDescriber{}, Options{})
	if p != nil || len(errs) != 1 {
		t.Errorf("Build(nil) = %v, %v", p, errs)
	}
}

func TestHostParams(t *testing.T) {
	for _, k := range spec.Kinds {
		p := HostParams(string(k))
		if p.Name != string(k) || p.Doc == "" {
			t.Errorf("HostParams(%s) = %+v", k, p)
		}
	}
	if p := HostParams("train"); p.Name != "" {
		t.Errorf("HostParams(train) = %+v", p)
	}
	names := func(ps []sdk.Param) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	if got := names(HostParams("generate").Fields); !slices.Equal(got, []string{"model", "preset", "weights", "batch", "count", "labels"}) {
		t.Errorf("generate host keys %v", got)
	}
	if got := names(HostParams("translate").Fields); !slices.Equal(got, []string{"model", "preset", "weights", "batch", "conform", "restore"}) {
		t.Errorf("translate host keys %v", got)
	}
	if got := names(StageParams()); !slices.Equal(got, []string{"id", "input", "keep"}) {
		t.Errorf("stage keys %v", got)
	}
}

// TestFakeDescriptionsAreValid keeps the test plugins honest: they must
// pass the same checks a real plugin's description does.
func TestFakeDescriptionsAreValid(t *testing.T) {
	for name, d := range fakeDescs {
		for _, err := range sdk.ValidateDescription(*d) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestDesignOverride is DESIGN.md's example: --set typeset.direction=b2a.
func TestDesignOverride(t *testing.T) {
	data, err := os.ReadFile("testdata/digits.yaml")
	if err != nil {
		t.Fatal(err)
	}
	build := func(set string) (*Plan, spec.Errors) {
		s, errs := spec.Parse("testdata/digits.yaml", data, []string{set})
		if len(errs) > 0 {
			return nil, errs
		}
		return Build(context.Background(), s, &fakeDescriber{}, Options{})
	}
	p, errs := build("typeset.direction=b2a")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got := p.Stage("typeset").Model.Params.String("direction"); got != "b2a" {
		t.Errorf("direction %q", got)
	}
	_, errs = build("typeset.direction=up")
	want := `--set typeset.direction: translate.direction: "up" is not one of a2b, b2a`
	if errs.Error() != want {
		t.Errorf("got %s\nwant %s", errs, want)
	}
}

// The file format's kinds are the registry's.
func TestKindsAreTheRegistry(t *testing.T) {
	var names []string
	for _, k := range stages.Kinds() {
		names = append(names, k.Name)
	}
	var want []string
	for _, k := range spec.Kinds {
		want = append(want, string(k))
	}
	if !slices.Equal(names, want) {
		t.Errorf("stages.Kinds() %v, spec.Kinds %v", names, want)
	}
}
