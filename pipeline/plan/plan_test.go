package plan

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/pipeline/spec"
)

// workdir makes a folder with the files the test pipelines name and
// changes into it, so positions read "p.yaml:LINE:COL".
func workdir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"photos", "bin", "weights.d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"w.safetensors", "list.txt", "bin/pipeline-plugin-local", "digits.idx", "labels.idx"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	return dir
}

// check parses and plans src as `pipeline validate` does and returns every
// message, sorted.
func check(t *testing.T, src string, overrides []string, opts Options) (*Plan, []string, *fakeDescriber) {
	t.Helper()
	d := &fakeDescriber{}
	s, errs := spec.Parse("p.yaml", []byte(src), overrides)
	var p *Plan
	if s != nil {
		var perrs spec.Errors
		p, perrs = Build(context.Background(), s, d, opts)
		if (p == nil) == (len(perrs) == 0) {
			t.Errorf("Build returned plan %v with %d errors", p != nil, len(perrs))
		}
		errs = append(errs, perrs...)
		errs.Sort()
	}
	var lines []string
	for _, e := range errs {
		lines = append(lines, e.Error())
	}
	return p, lines, d
}

const head = "version: 1\nname: t\nstages:\n"

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		overrides []string
		want      []string
	}{
		{name: "valid edges batch", src: head + "  - id: photos\n    load: {dir: photos, glob: \"**/*.jpg\"}\n  - id: prep\n    preprocess:\n      - grayscale\n      - resize: {width: 256, height: 256}\n  - id: sketch\n    translate: {model: edges, preset: default, batch: 16, method: sobel, threshold: 0.2}\n  - id: out\n    input: sketch\n    save: {dir: out, format: png}\n"},
		{name: "unknown parameters", src: head + "  - id: a\n    load: {dir: photos, glb: x}\n  - id: b\n    translate: {model: edges, treshold: 0.2, prest: default, colour: 1}\n  - id: c\n    save: {dir: out, grid: {colums: 3}}\n", want: []string{"p.yaml:5:25: load: unknown parameter \"glb\" (did you mean \"glob\"?)", "p.yaml:7:31: translate: unknown parameter \"treshold\" (did you mean \"threshold\"?)", "p.yaml:7:46: translate: unknown parameter \"prest\" (did you mean \"preset\"?)", "p.yaml:7:62: translate: unknown parameter \"colour\" (edges translate takes model, preset, weights, batch, method, threshold, invert, kernel)", "p.yaml:9:29: save.grid: unknown parameter \"colums\" (did you mean \"columns\"?)"}},
		{name: "wrong types and ranges", src: head + "  - id: a\n    load: {dir: photos, limit: -1, recursive: \"yes\"}\n  - id: b\n    preprocess:\n      - resize: {width: -3, height: 2.5}\n      - blur: {}\n      - rotate: {angle: 400}\n      - sharpn: {sigma: 1}\n      - {grayscale: {}, invert: {}}\n  - id: c\n    translate: {model: edges, threshold: 2, method: sobol, kernel: {size: 0}, batch: 0}\n  - id: d\n    save: {format: tiff, grid: {columns: 0}}\n", want: []string{"p.yaml:5:32: load.limit: -1 is out of range [0, +inf]", "p.yaml:5:47: load.recursive: expected bool, got string \"yes\"", "p.yaml:8:25: preprocess[0].resize.width: -3 is out of range [0, 65536]", "p.yaml:8:37: preprocess[0].resize.height: expected int, got 2.5", "p.yaml:9:9: preprocess[1].blur: missing required parameter \"sigma\" (float)", "p.yaml:10:25: preprocess[2].rotate.angle: 400 is out of range [-360, 360]", "p.yaml:11:9: preprocess[3]: unknown parameter \"sharpn\" (did you mean \"sharpen\"?)", "p.yaml:12:9: preprocess[4]: expected exactly one of resize, fit, fill, crop, grayscale, invert, flip, rotate, blur, sharpen, brightness, contrast, gamma, noise, conform, edges, got 2 keys", "p.yaml:14:42: translate.threshold: 2 is out of range [0, 1]", "p.yaml:14:53: translate.method: \"sobol\" is not one of sobel, canny, laplace (did you mean \"sobel\"?)", "p.yaml:14:75: translate.kernel.size: 0 is out of range [1, 9]", "p.yaml:14:86: translate.batch: 0 is out of range [1, +inf]", "p.yaml:16:5: save: missing required parameter \"dir\" (string)", "p.yaml:16:20: save.format: \"tiff\" is not one of png, jpeg, gif (did you mean \"gif\"?)", "p.yaml:16:42: save.grid.columns: 0 is out of range [1, 1024]"}},
		{name: "load cross-field", src: head + "  - id: a\n    load: {dir: photos, list: list.txt}\n  - id: b\n    load: {}\n    input: a\n  - id: c\n    input: b\n    save: {dir: o}\n", want: []string{"p.yaml:5:31: load.list: dir and list are both given; a load reads from exactly one of dir, list, idx or typeset", "p.yaml:7:11: load: one of dir, list, idx or typeset is required", "p.yaml:8:5: stage \"b\": load reads files and takes no input (remove input:)"}},
		{name: "load files missing", src: head + "  - id: a\n    load: {dir: nophotos}\n  - id: b\n    load: {dir: w.safetensors}\n  - id: c\n    load: {idx: nodigits.idx, idx_labels: photos, labels: idx}\n  - id: d\n    input: [a, b, c]\n    save: {dir: o, name: \"{stage}-{name}\"}\n", want: []string{"p.yaml:5:17: load.dir: folder \"nophotos\" not found (paths are relative to the pipeline file's folder)", "p.yaml:7:17: load.dir: \"w.safetensors\" is a file, expected a folder", "p.yaml:9:17: load.idx: file \"nodigits.idx\" not found (paths are relative to the pipeline file's folder)", "p.yaml:9:43: load.idx_labels: \"photos\" is a folder, expected a file"}},
		{name: "save path problems", src: head + "  - id: a\n    load: {dir: photos}\n  - id: b\n    input: a\n    save: {dir: o, name: \"../{name}\"}\n  - id: c\n    input: a\n    save: {dir: o, name: \"/abs/{index:05}\"}\n  - id: d\n    input: a\n    save: {dir: o, name: \"{nmae}\", grid: {file: ../g.png}}\n  - id: e\n    input: a\n    save: {dir: o, images: false}\n  - id: f\n    input: a\n    save: {dir: \"\", format: jpeg, provenance: png, name: \"{label:5}\"}\n", want: []string{"p.yaml:8:26: save.name: the file name \"../x\" leaves the output folder (file names are relative to dir and stay inside it)", "p.yaml:11:26: save.name: the file name \"/abs/00000\" is an absolute path (file names are relative to dir and stay inside it)", "p.yaml:14:26: save.name: unknown field {nmae} (did you mean \"name\"?)", "p.yaml:14:49: save.grid.file: \"../g.png\" leaves the output folder (a file name inside dir)", "p.yaml:17:28: save.images: save writes nothing: images is false and there is no grid or animation (set images: true, or add grid: {} or animation: {})", "p.yaml:20:17: save.dir: dir is empty; name the output folder", "p.yaml:20:47: save.provenance: provenance: png needs format: png, got format \"jpeg\" (use provenance: sidecar)", "p.yaml:20:58: save.name: {label:5}: bad width \"5\" (a zero-padded width such as {label:05})"}},
		{name: "unknown model", src: head + "  - id: a\n    generate: {model: gann, count: 4}\n  - id: b\n    generate: {model: stylegan, count: 4}\n  - id: c\n    generate: {count: 4}\n  - id: d\n    generate: {model: 7, count: 4}\n", want: []string{"p.yaml:5:23: generate.model: unknown model \"gann\" (did you mean \"gan\"?)", "p.yaml:7:23: generate.model: unknown model \"stylegan\" (known models: bare, broken, cyclegan, diffusion, edges, gan, trainonly, vae)", "p.yaml:9:5: generate: missing required parameter \"model\" (string)", "p.yaml:11:23: generate.model: expected string, got number 7"}},
		{name: "model lacks capability", src: head + "  - id: a\n    generate: {model: edges, count: 4}\n  - id: b\n    translate: {model: trainonly}\n", want: []string{"p.yaml:5:5: stage \"a\": model \"edges\" cannot generate (it can: translate)", "p.yaml:7:5: stage \"b\": model \"trainonly\" cannot translate (it can: train)"}},
		{name: "describe fails once per model", src: head + "  - id: a\n    generate: {model: broken, count: 4}\n  - id: b\n    translate: {model: broken}\n", want: []string{"p.yaml:5:23: generate.model: cannot describe plugin \"broken\": plugin broken: handshake failed: unexpected output on stdout"}},
		{name: "presets", src: head + "  - id: a\n    generate: {model: gan, preset: mnist-cgen, count: 4}\n  - id: b\n    generate: {model: gan, preset: other, count: 4}\n  - id: c\n    generate: {model: diffusion, preset: mnist, count: 4}\n  - id: d\n    generate: {model: diffusion, count: 4}\n  - id: e\n    translate: {model: bare, preset: p}\n", want: []string{"p.yaml:5:36: generate.preset: model \"gan\" has no preset \"mnist-cgen\" (did you mean \"mnist-cgan\"?)", "p.yaml:7:36: generate.preset: model \"gan\" has no preset \"other\" (presets: mnist-cgan, mnist-dcgan)", "p.yaml:9:42: stage \"c\": preset \"mnist\" of model \"diffusion\" cannot generate (presets that can: mnist-gen)", "p.yaml:13:38: translate.preset: model \"bare\" has no preset \"p\" (presets: any)"}},
		{name: "weights", src: head + "  - id: a\n    generate: {model: gan, weights: w.safetensors, count: 1}\n  - id: b\n    generate: {model: gan, weights: missing.safetensors, count: 1}\n  - id: c\n    generate: {model: gan, weights: weights.d, count: 1}\n", want: []string{"p.yaml:7:37: generate.weights: file \"missing.safetensors\" not found (paths are relative to the pipeline file's folder)", "p.yaml:9:37: generate.weights: \"weights.d\" is a folder, expected a weights file"}},
		{name: "save name collisions", src: head + "  - id: a\n    load: {dir: photos}\n  - id: g\n    preprocess: [grayscale]\n  - id: s\n    input: [a, g]\n    save: {dir: o}\n  - id: t\n    input: g\n    save: {dir: o, grid: {}, name: \"{index}\"}\n  - id: u\n    input: [a, g]\n    save: {dir: o/../o, name: \"x{stage}-{index}\", grid: {}}\n  - id: v\n    input: [a, g]\n    save: {dir: o, name: \"{index}-{stage}\", images: true}\n", want: []string{"p.yaml:10:11: save.name: the inputs \"a\" and \"g\" of save stage \"s\" write the same file names (their items share index, name and label) (add {stage} to name, e.g. name: \"{stage}-{name}\")", "p.yaml:13:17: save.dir: save stage \"t\" can write the same file names as save stage \"s\", into the same folder o (give each save its own dir, or names that differ, e.g. name: \"t-{name}\")", "p.yaml:16:17: save.dir: save stage \"u\" can write the same file names as save stage \"s\", into the same folder o/../o (give each save its own dir, or names that differ, e.g. name: \"u-{name}\")", "p.yaml:19:17: save.dir: save stage \"v\" can write the same file names as save stage \"s\", into the same folder o (give each save its own dir, or names that differ, e.g. name: \"v-{name}\")"}},
		{name: "save grids and stage names apart", src: head + "  - id: a\n    load: {dir: photos}\n  - id: g\n    preprocess: [grayscale]\n  - id: s\n    input: [a, g]\n    save: {dir: o, name: \"{stage}/{name}\", grid: {}}\n  - id: t\n    input: g\n    save: {dir: o, name: \"t-{index}\", grid: {}}\n  - id: u\n    input: g\n    save: {dir: o2, name: \"{index}\", grid: {}}\n", want: []string{"p.yaml:13:17: save.dir: save stage \"t\" writes grid.png, as save stage \"s\" does (give each save its own dir or grid/animation file name)"}},
		{name: "inputs", src: head + "  - id: a\n    load: {dir: photos}\n  - id: b\n    input: [a, x, a, bb]\n    save: {dir: o}\n  - id: bb\n    input: b\n    save: {dir: o2}\n  - id: c\n    save: {dir: o3}\n", want: []string{"p.yaml:7:16: stage \"b\": input \"x\" is not a stage (did you mean \"a\"?)", "p.yaml:7:19: stage \"b\": input \"a\" is listed twice", "p.yaml:7:22: stage \"b\": input \"bb\" is a save stage, which emits nothing (name the stage that the save reads)", "p.yaml:10:12: stage \"bb\": input \"b\" is a save stage, which emits nothing (name the stage that the save reads)", "p.yaml:13:5: stage \"c\" would read the previous stage \"bb\", a save, which emits nothing (set input: to the stage it should read)"}},
		{name: "first stage reads nothing", src: head + "  - id: a\n    translate: {model: edges}\n  - id: b\n    save: {dir: o}\n", want: []string{"p.yaml:5:5: stage \"a\": translate has nothing to read: it is the first stage (start with a load or generate stage, or set input:)"}},
		{name: "first generate without count", src: head + "  - id: a\n    generate: {model: gan}\n  - id: b\n    save: {dir: o}\n", want: []string{"p.yaml:5:5: stage \"a\": generate needs count, or an input of latents, but it is the first stage (add count: N to generate from noise)"}},
		{name: "cycles", src: head + "  - id: a\n    input: c\n    translate: {model: edges}\n  - id: b\n    translate: {model: edges}\n  - id: c\n    translate: {model: edges}\n  - id: d\n    input: d\n    translate: {model: edges}\n  - id: e\n    load: {dir: photos}\n", want: []string{"p.yaml:5:12: stages form a cycle: \"a\" -> \"b\" -> \"c\" -> \"a\" (a stage cannot read its own output, directly or through others)", "p.yaml:12:12: stages form a cycle: \"d\" -> \"d\" (a stage cannot read its own output, directly or through others)"}},
		{name: "generate count with input", src: head + "  - id: a\n    load: {dir: photos}\n  - id: g\n    input: a\n    generate: {model: vae, count: 3}\n", want: []string{"p.yaml:7:5: stage \"g\": generate with count generates from noise and takes no input (remove input: to generate from noise, or remove count to decode latents from the input)"}},
		{name: "shape mismatch", src: head + "  - id: a\n    load: {dir: photos}\n  - id: p\n    preprocess: [{resize: {width: 128, height: 128}}]\n  - id: s\n    translate: {model: edges, preset: sketch256}\n  - id: q\n    input: a\n    preprocess: [grayscale, {resize: {width: 256, height: 256}}]\n  - id: s2\n    translate: {model: edges, preset: sketch256}\n  - id: g\n    generate: {model: gan, count: 2}\n  - id: c\n    translate: {model: cyclegan, preset: mnist-typeset}\n  - id: d\n    translate: {model: edges, preset: sketch256}\n", want: []string{"p.yaml:9:5: stage \"s\" (model \"edges\" preset \"sketch256\") expects 3-channel 256x256 images, got 128x128 images from \"p\" (end preprocess stage \"p\" with - conform: {}, or - resize: {width: 256, height: 256})", "p.yaml:14:5: stage \"s2\" (model \"edges\" preset \"sketch256\") expects 3-channel 256x256 images, got 1-channel 256x256 images from \"q\" (end preprocess stage \"q\" with - conform: {})", "p.yaml:20:5: stage \"d\" (model \"edges\" preset \"sketch256\") expects 3-channel 256x256 images, got 1-channel 28x28 images from \"c\" (add a preprocess stage before it with - conform: {}, or - resize: {width: 256, height: 256})"}},
		{name: "conform fixes shape", src: head + "  - id: a\n    load: {dir: photos}\n  - id: p\n    preprocess: [{resize: {width: 128, height: 128}}, conform]\n  - id: s\n    translate: {model: edges, preset: sketch256}\n  - id: o\n    save: {dir: o}\n"},
		{name: "conform without model consumer", src: head + "  - id: a\n    load: {dir: photos}\n  - id: p\n    preprocess: [{conform: {}}]\n  - id: o\n    save: {dir: o}\n", want: []string{"p.yaml:7:28: preprocess[0].conform: conform needs a model stage after it that declares its input size and channels; none does"}},
		{name: "conform ambiguous", src: head + "  - id: a\n    load: {dir: photos}\n  - id: p\n    preprocess: [conform]\n  - id: s\n    translate: {model: edges, preset: sketch256}\n  - id: t\n    input: p\n    translate: {model: cyclegan, preset: mnist-typeset}\n", want: []string{"p.yaml:7:18: preprocess[0].conform: the stages reading this one want different images (\"s\" wants 3-channel 256x256, \"t\" wants 1-channel 28x28) (use one preprocess stage per consumer)"}},
		{name: "latents vs images", src: head + "  - id: a\n    load: {dir: photos}\n  - id: e\n    encode: {model: vae}\n  - id: s\n    save: {dir: o}\n  - id: t\n    input: e\n    translate: {model: edges}\n  - id: p\n    input: e\n    preprocess: [grayscale]\n  - id: g\n    input: a\n    generate: {model: vae}\n", want: []string{"p.yaml:9:5: stage \"s\" needs images, got 16-dim latents of space \"vae/mnist-z16\" from \"e\" (decode them to images with a generate stage first)", "p.yaml:11:12: stage \"t\" (model \"edges\" preset \"default\") needs images, got 16-dim latents of space \"vae/mnist-z16\" from \"e\" (decode them to images with a generate stage first)", "p.yaml:14:12: stage \"p\" needs images, got 16-dim latents of space \"vae/mnist-z16\" from \"e\" (decode them to images with a generate stage first)", "p.yaml:17:12: stage \"g\" (model \"vae\" preset \"mnist\") decodes latents, got images from \"a\" (set count: N to generate from noise, or encode the images first)"}},
		{name: "latent space mismatch", src: head + "  - id: a\n    load: {dir: photos}\n  - id: e\n    encode: {model: vae, preset: mnist}\n  - id: g\n    generate: {model: vae, preset: faces}\n  - id: g2\n    input: e\n    generate: {model: gan}\n  - id: g3\n    input: e\n    generate: {model: vae}\n", want: []string{"p.yaml:9:5: stage \"g\" (model \"vae\" preset \"faces\") decodes latent space \"vae/faces-z32\", got 16-dim latents of space \"vae/mnist-z16\" from \"e\" (encode and decode with the same model and preset)", "p.yaml:11:12: stage \"g2\" (model \"gan\" preset \"mnist-cgan\") cannot decode latents: it declares no latent space (set count: N to generate from noise)"}},
		{name: "labels", src: head + "  - id: a\n    generate: {model: gan, count: 10, labels: [0, 3, 10, 12]}\n  - id: b\n    generate: {model: gan, preset: mnist-dcgan, count: 10, labels: each}\n  - id: c\n    generate: {model: gan, count: 10, labels: 11}\n  - id: d\n    generate: {model: gan, count: 10, labels: every}\n  - id: e\n    generate: {model: gan, count: 10, labels: [-1]}\n", want: []string{"p.yaml:5:54: generate.labels: label 10 is out of range: model \"gan\" preset \"mnist-cgan\" has 10 classes (0 to 9)", "p.yaml:5:58: generate.labels: label 12 is out of range: model \"gan\" preset \"mnist-cgan\" has 10 classes (0 to 9)", "p.yaml:7:60: generate.labels: model \"gan\" preset \"mnist-dcgan\" is not conditional (it declares no classes) (remove labels, or choose a conditional preset)", "p.yaml:9:47: generate.labels: label 11 is out of range: model \"gan\" preset \"mnist-cgan\" has 10 classes (0 to 9)", "p.yaml:11:47: generate.labels: \"every\" is not a list nor one of each", "p.yaml:13:48: generate.labels[0]: -1 is out of range [0, +inf]"}},
		{name: "plugins path", src: "version: 1\nname: t\nplugins:\n  local: {path: bin/pipeline-plugin-local}\n  gone: {path: bin/nothing}\n  dir: {path: photos}\nstages:\n  - id: a\n    load: {dir: photos}\n  - id: b\n    translate: {model: local, strength: x}\n  - id: c\n    translate: {model: loca}\n  - id: d\n    translate: {model: gone}\n", want: []string{"p.yaml:5:16: plugin \"gone\": executable \"bin/nothing\" not found (paths are relative to the pipeline file's folder)", "p.yaml:6:15: plugin \"dir\": \"photos\" is a folder, expected an executable", "p.yaml:11:41: translate.strength: expected float, got string \"x\"", "p.yaml:13:24: translate.model: unknown model \"loca\" (did you mean \"local\"?)"}},
		{name: "override errors are at the flag", src: head + "  - id: a\n    load: {dir: photos}\n  - id: b\n    translate: {model: edges}\n  - id: o\n    save: {dir: o}\n", want: []string{"--set a.dir: load.dir: \"w.safetensors\" is a file, expected a folder", "--set b.mthod: translate: unknown parameter \"mthod\" (did you mean \"method\"?)", "--set b.threshold: translate.threshold: 3 is out of range [0, 1]", "--set o.grid.columns: save.grid.columns: 0 is out of range [1, 1024]", "--set o.typo.x: save: unknown parameter \"typo\""},
			overrides: []string{"b.threshold=3", "b.mthod=canny", "o.grid.columns=0", "o.typo.x=1", "a.dir=w.safetensors"}},
		{name: "override of an input", src: head + "  - id: a\n    load: {dir: photos}\n  - id: o\n    save: {dir: o}\n", overrides: []string{"o.input=[a, b]"}, want: []string{"--set o.input: stage \"o\": input \"b\" is not a stage (did you mean \"a\"?)"}},
		{name: "override of the model", src: head + "  - id: a\n    load: {dir: photos}\n  - id: b\n    translate: {model: edges}\n", overrides: []string{"b.model=edgs"}, want: []string{"--set b.model: translate.model: unknown model \"edgs\" (did you mean \"edges\"?)"}},
		{name: "spec errors and plan errors together", src: head + "  - id: a\n    lod: {dir: photos}\n  - id: b\n    translate: {model: edges, threshold: 5}\n  - id: c\n    input: zz\n    save: {dir: o}\n", want: []string{"p.yaml:5:5: unknown stage key \"lod\" (did you mean \"load\"?)", "p.yaml:7:42: translate.threshold: 5 is out of range [0, 1]", "p.yaml:9:12: stage \"c\": input \"zz\" is not a stage (did you mean \"a\"?)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			workdir(t)
			_, got, _ := check(t, tc.src, tc.overrides, Options{})
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
