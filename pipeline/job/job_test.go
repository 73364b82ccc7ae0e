package job

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/pipeline/run"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

// The test binary doubles as the plugins: the host re-executes it with
// `plugin serve NAME`, so every model call below crosses a real process.
func TestMain(m *testing.M) {
	pluginhost.RegisterBuiltin("testplug", func() sdk.Plugin { return sdktest.NewTestPlugin("testplug") })
	pluginhost.RegisterBuiltin("poison", func() sdk.Plugin { return &poisonPlugin{sdktest.NewTestPlugin("poison")} })
	if len(os.Args) == 4 && os.Args[1] == "plugin" && os.Args[2] == "serve" {
		f, ok := pluginhost.Builtin(os.Args[3])
		if !ok {
			os.Exit(2)
		}
		sdk.Serve(f())
		return
	}
	os.Exit(m.Run())
}

// poisonPlugin wraps the test plugin; its translate kills the process when
// an image's first pixel is 13, like a model that crashes on one input.
type poisonPlugin struct{ sdk.Plugin }

type poisonModel struct{ sdk.Translator }

func (p *poisonPlugin) Load(ctx context.Context, req sdk.LoadRequest) (sdk.Model, error) {
	m, err := p.Plugin.Load(ctx, req)
	if err != nil {
		return nil, err
	}
	return poisonModel{m.(sdk.Translator)}, nil
}

func (m poisonModel) Translate(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	for i := 0; i < in.Len(); i++ {
		if in.Slice(i, i+1).Data[0] == 13 {
			os.Exit(3)
		}
	}
	return m.Translator.Translate(ctx, in)
}

func newPluginHost(t *testing.T) *pluginhost.Host {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	m := pluginhost.New(pluginhost.Options{SearchDirs: []string{}, BuiltinCommand: []string{exe, "plugin", "serve"}})
	t.Cleanup(func() { m.Close() })
	return m
}

func runFile(t *testing.T, dir, yaml string, sets []string, opt Options) *run.Result {
	t.Helper()
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	m := newPluginHost(t)
	p, errs := CheckFile(context.Background(), m, file, sets, nil)
	if len(errs) > 0 {
		t.Fatalf("check: %v", errs)
	}
	res, err := Run(context.Background(), p, m, opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || filepath.Ext(path) != ".png" {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const chainYAML = `version: 1
name: chain
seed: 5
stages:
  - id: gen
    generate: {model: testplug, count: 23, labels: each, batch: 4}
  - id: inv
    translate: {model: testplug, op: invert, batch: 5}
  - id: blur
    denoise: {model: testplug, strength: 0.5, batch: 3}
  - id: out
    save: {dir: out, provenance: none}
`

// A chain of three model stages in two plugin processes gives the same
// bytes whatever the batch sizes and worker counts.
func TestChainIndependentOfBatching(t *testing.T) {
	dir := t.TempDir()
	res := runFile(t, dir, chainYAML, nil, Options{})
	if res.Written != 23 || len(res.Failures) != 0 {
		t.Fatalf("written %d failures %v", res.Written, res.Failures)
	}
	ref := readDir(t, filepath.Join(dir, "out"))
	if len(ref) != 23 {
		t.Fatalf("%d files, want 23", len(ref))
	}
	dir2 := t.TempDir()
	runFile(t, dir2, chainYAML, []string{"gen.batch=16", "inv.batch=1", "blur.batch=7"}, Options{ModelWorkers: 1, Workers: 1})
	got := readDir(t, filepath.Join(dir2, "out"))
	for name, b := range ref {
		if got[name] != b {
			t.Fatalf("%s differs between batchings", name)
		}
	}
}

func writePNG(t *testing.T, path string, w, h int, first uint8) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 5), 100, 255})
		}
	}
	img.Set(0, 0, color.RGBA{first, first, first, 255})
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

// Items of different sizes go to the model in separate calls, and an item
// that crashes the plugin (twice: the call is retried once on a fresh
// process) fails alone; the rest of its batch is written.
func TestMixedSizesAndPoisonItem(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o755)
	for i := 0; i < 10; i++ {
		w := 20 + 4*(i%3)
		first := uint8(200)
		if i == 6 {
			first = 13 // the poison item
		}
		writePNG(t, filepath.Join(in, fmt.Sprintf("img%02d.png", i)), w, 16, first)
	}
	yaml := `version: 1
name: poison
stages:
  - id: in
    load: {dir: in}
  - id: inv
    translate: {model: poison, preset: rgb8, op: invert, batch: 8}
  - id: out
    save: {dir: out}
`
	res := runFile(t, dir, yaml, nil, Options{OnError: run.Skip})
	if len(res.Failures) != 1 || res.Failures[0].Item != "img06" {
		t.Fatalf("failures %v, want just img06", res.Failures)
	}
	if !strings.Contains(res.Failures[0].Err.Error(), "poison") {
		t.Errorf("failure does not name the plugin: %v", res.Failures[0].Err)
	}
	files := readDir(t, filepath.Join(dir, "out"))
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) != 9 || res.Written != 9 {
		t.Fatalf("wrote %v, want the 9 good images", names)
	}
	for _, n := range names {
		img, err := png.Decode(strings.NewReader(files[n]))
		if err != nil {
			t.Fatal(err)
		}
		// invert: the (200,200,200) first pixel becomes 55.
		if r, _, _, _ := img.At(0, 0).RGBA(); r>>8 != 55 {
			t.Fatalf("%s: first pixel %d, want 55 (inverted)", n, r>>8)
		}
	}
}
