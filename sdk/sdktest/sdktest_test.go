package sdktest

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe/sdk"
)

// serveEnv makes the test binary serve a plugin instead of running tests, so
// the tests launch real plugin processes without a separate build.
const serveEnv = "SDKTEST_TEST_SERVE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(serveEnv); mode != "" {
		sdk.Serve(pluginFor(mode))
		return
	}
	os.Exit(m.Run())
}

func selfConfig(t testing.TB, mode string) Config {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Config{Command: []string{exe}, Env: []string{serveEnv + "=" + mode}, Timeout: 30 * time.Second}
}

func TestConformanceOfTestPlugin(t *testing.T) {
	Run(t, selfConfig(t, "good"))
}

func TestConformanceBuiltFromPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin with go build")
	}
	Run(t, Config{Package: "./testdata/plugin", TrainParams: map[string]any{"rate": 0.5}})
}

// TestChecksCanFail runs single checks against deliberately broken plugins
// and expects each to fail with a message that names the problem.
func TestChecksCanFail(t *testing.T) {
	tests := []struct {
		mode, check, want string
	}{
		{"baddesc", "describe", `default 50 fails its own spec`},
		{"nondeterministic", "determinism", "two calls with the same inputs and seeds gave different outputs"},
		{"batchdependent", "determinism", "differs from the same item in a batch"},
		{"badrange", "capabilities", "outside the declared range"},
		{"notrain", "train", "without saving final weights"},
		{"lostparams", "params", "refused the declared enum value"},
		{"badpattern", "describe", `translate.params.tag: invalid pattern "[a-z"`},
		{"noscale", "capabilities", "up2/translate: call with 3 generated items: plugin testplug: translate: returned output is 1x32x32 uint8, expected 1x64x64 uint8 (output size scale x2 of a 32x32 input)"},
		{"resize", "capabilities", "rgb8/translate: call with 3 generated items: plugin testplug: translate: returned output is 3x64x64 uint8, expected 3x32x32 uint8"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			p := Start(t, selfConfig(t, tt.mode))
			h := newHarness(t, p, Config{Timeout: 30 * time.Second})
			ft := runFake(t, func(tb testing.TB) { findCheck(t, tt.check).fn(tb, h) })
			if !ft.Failed() {
				t.Fatalf("check %s passed on the %s plugin", tt.check, tt.mode)
			}
			if !strings.Contains(ft.output(), tt.want) {
				t.Errorf("check %s failed without %q:\n%s", tt.check, tt.want, ft.output())
			}
		})
	}
}

// TestTrainCheckCatchesBadSamples: samples that are not images of the
// preset's output contract fail the train check.
func TestTrainCheckCatchesBadSamples(t *testing.T) {
	p := Start(t, selfConfig(t, "good"))
	h := newHarness(t, p, Config{Timeout: 30 * time.Second, TrainParams: map[string]any{"bad_samples": true}})
	ft := runFake(t, func(tb testing.TB) { findCheck(t, "train").fn(tb, h) })
	if want := "train: samples at step 2: output of shape [4 784], expected N x C x H x W"; !ft.Failed() || !strings.Contains(ft.output(), want) {
		t.Errorf("train check with bad samples: failed %v, want %q in:\n%s", ft.Failed(), want, ft.output())
	}
}

// TestGoodPluginPassesEachCheck runs the checks through the fake TB too, so
// the fake is known not to fail on its own.
func TestGoodPluginPassesEachCheck(t *testing.T) {
	p := Start(t, selfConfig(t, "good"))
	h := newHarness(t, p, Config{Timeout: 30 * time.Second})
	for _, c := range checks {
		ft := runFake(t, func(tb testing.TB) { c.fn(tb, h) })
		if ft.Failed() {
			t.Errorf("check %s failed on the good plugin:\n%s", c.name, ft.output())
		}
	}
}

func TestStartRejectsNonPlugin(t *testing.T) {
	ft := runFake(t, func(tb testing.TB) {
		Start(tb, Config{Command: []string{"/bin/sh", "-c", "echo hello"}, Timeout: 10 * time.Second})
	})
	if !ft.Failed() || !strings.Contains(ft.output(), "did not complete the plugin handshake") {
		t.Errorf("Start of a non-plugin: %s", ft.output())
	}
}

func findCheck(t *testing.T, name string) check {
	for _, c := range checks {
		if c.name == name {
			return c
		}
	}
	t.Fatalf("no check %q", name)
	return check{}
}

// pluginFor returns the test plugin or a broken variant of it.
func pluginFor(mode string) sdk.Plugin {
	good := NewTestPlugin("testplug").(*testPlugin)
	if mode == "good" {
		return good
	}
	return &brokenPlugin{testPlugin: good, mode: mode}
}

// brokenPlugin breaks one rule of the contract, per mode.
type brokenPlugin struct {
	*testPlugin
	mode string
}

func (b *brokenPlugin) Describe() sdk.Description {
	d := b.testPlugin.Describe()
	switch b.mode {
	case "baddesc":
		p := &d.Capability(sdk.CapTranslate).Params[1]
		p.Default = 50.0 // above its max of 10
	case "badpattern":
		for i, p := range d.Capability(sdk.CapTranslate).Params {
			if p.Name == "tag" {
				d.Capability(sdk.CapTranslate).Params[i].Pattern = "[a-z"
			}
		}
	}
	return d
}

func (b *brokenPlugin) Load(ctx context.Context, req sdk.LoadRequest) (sdk.Model, error) {
	if b.mode == "lostparams" && req.Params.String("op") == "invert" {
		return nil, fmt.Errorf("op invert is not implemented")
	}
	m, err := b.testPlugin.Load(ctx, req)
	if err != nil {
		return nil, err
	}
	return &brokenModel{testModel: m.(*testModel), mode: b.mode}, nil
}

func (b *brokenPlugin) Train(ctx context.Context, s sdk.TrainSession) error {
	if b.mode == "notrain" {
		_, _ = s.Next(ctx)
		return nil
	}
	return b.testPlugin.Train(ctx, s)
}

type brokenModel struct {
	*testModel
	mode string
}

func (m *brokenModel) Translate(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	switch {
	case m.mode == "noscale" && m.preset.Name == "up2":
		return m.testModel.translate(in) // declares x2, keeps the size
	case m.mode == "resize" && m.preset.Name == "rgb8":
		out, err := m.testModel.translate(in)
		if err != nil {
			return nil, err
		}
		return resample(out, 2, 1), nil // declares the same size
	}
	out, err := m.testModel.Translate(ctx, in)
	if err != nil {
		return nil, err
	}
	switch m.mode {
	case "nondeterministic":
		out.Data[0] ^= byte(time.Now().UnixNano()) | 1
	case "batchdependent":
		out.Data[len(out.Data)-1] ^= byte(in.Len())
	case "badrange":
		if out.DType == sdk.Float32 {
			return sdk.FromFloat32(make2(out.NumElements()), out.Shape...), nil
		}
	}
	return out, nil
}

func make2(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 2
	}
	return v
}

// fakeTB records failures instead of failing the test, to prove that checks
// can fail. Fatal and Skip end the goroutine, like testing.T's.
type fakeTB struct {
	testing.TB
	t *testing.T

	mu       sync.Mutex
	msgs     []string
	failed   bool
	cleanups []func()
}

func runFake(t *testing.T, fn func(tb testing.TB)) *fakeTB {
	ft := &fakeTB{t: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			for i := len(ft.cleanups) - 1; i >= 0; i-- {
				ft.cleanups[i]()
			}
		}()
		fn(ft)
	}()
	<-done
	return ft
}

func (f *fakeTB) record(fail bool, s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, s)
	f.failed = f.failed || fail
}

func (f *fakeTB) output() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.msgs, "\n")
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Name() string                   { return f.t.Name() + "/fake" }
func (f *fakeTB) TempDir() string                { return f.t.TempDir() }
func (f *fakeTB) Cleanup(fn func())              { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Log(a ...any)                   { f.record(false, fmt.Sprint(a...)) }
func (f *fakeTB) Logf(format string, a ...any)   { f.record(false, fmt.Sprintf(format, a...)) }
func (f *fakeTB) Error(a ...any)                 { f.record(true, fmt.Sprint(a...)) }
func (f *fakeTB) Errorf(format string, a ...any) { f.record(true, fmt.Sprintf(format, a...)) }
func (f *fakeTB) Fatal(a ...any)                 { f.record(true, fmt.Sprint(a...)); runtime.Goexit() }
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.record(true, fmt.Sprintf(format, a...))
	runtime.Goexit()
}
func (f *fakeTB) Skip(a ...any) { f.record(false, fmt.Sprint(a...)); runtime.Goexit() }
func (f *fakeTB) Skipf(format string, a ...any) {
	f.record(false, fmt.Sprintf(format, a...))
	runtime.Goexit()
}
func (f *fakeTB) SkipNow() { runtime.Goexit() }
func (f *fakeTB) FailNow() { f.record(true, "FailNow"); runtime.Goexit() }
func (f *fakeTB) Fail()    { f.record(true, "Fail") }
func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// TestParamValuesForPatterns: the params check offers a declared pattern or
// format a value it must refuse, and required parameters a value it
// accepts.
func TestParamValuesForPatterns(t *testing.T) {
	for _, p := range []sdk.Param{
		{Name: "tag", Type: sdk.String, Pattern: `[a-z][a-z0-9-]*`},
		{Name: "code", Type: sdk.String, Pattern: `(v|r)[0-9]{2,3}(\.[0-9]+)?`},
		{Name: "hex", Type: sdk.String, Pattern: `[[:xdigit:]]+`},
		{Name: "fill", Type: sdk.String, Format: sdk.FormatColor},
		{Name: "every", Type: sdk.String, Format: sdk.FormatDuration},
	} {
		var refused []any
		for _, v := range badValues(&p) {
			if _, isString := v.(string); isString {
				refused = append(refused, v)
			}
		}
		if len(refused) == 0 {
			t.Errorf("%s: badValues offers no string that the pattern or format refuses", p.Name)
		}
		for _, v := range refused {
			if _, errs := sdk.CheckParams([]sdk.Param{p}, map[string]any{p.Name: v}, ""); len(errs) == 0 {
				t.Errorf("%s: badValues offers %q, which the spec accepts", p.Name, v)
			}
		}
		v := sampleValue(&p)
		if _, errs := sdk.CheckParams([]sdk.Param{p}, map[string]any{p.Name: v}, ""); len(errs) > 0 {
			t.Errorf("%s: sampleValue %q is refused: %v", p.Name, v, errs[0])
		}
	}
}

// TestOutputProblemsSizeRule: the kit's own output check applies the size
// rule (the SDK of the plugin may predate it and not check).
func TestOutputProblemsSizeRule(t *testing.T) {
	desc := NewTestPlugin("testplug").Describe()
	in := sdk.NewTensor(sdk.Uint8, 1, 1, 4, 6)
	for _, tt := range []struct {
		preset string
		out    *sdk.Tensor
		want   string
	}{
		{"up2", sdk.NewTensor(sdk.Uint8, 1, 1, 8, 12), ""},
		{"up2", sdk.NewTensor(sdk.Uint8, 1, 1, 4, 6), "output is 6x4 for a 6x4 input (WxH), expected 12x8: the preset declares output size scale x2"},
		{"rgb8", sdk.NewTensor(sdk.Uint8, 1, 3, 4, 6), ""},
		{"rgb8", sdk.NewTensor(sdk.Uint8, 1, 3, 8, 12), "output is 12x8 for a 6x4 input (WxH), expected 6x4: the preset declares output size same"},
		{"gray28", sdk.NewTensor(sdk.Uint8, 1, 1, 4, 6), "expected 28x28: the preset declares output size fixed 28x28"},
	} {
		c := tcase{preset: desc.Preset(tt.preset), cap: sdk.CapTranslate}
		probs := strings.Join(outputProblems(c, 1, in, tt.out), "; ")
		if tt.want == "" && probs != "" || !strings.Contains(probs, tt.want) {
			t.Errorf("%s, output %v: problems %q, want %q", tt.preset, tt.out.Shape, probs, tt.want)
		}
	}
}

// TestOutputProblemsScores: an answer must carry every score its
// capability declares, one value per item.
func TestOutputProblemsScores(t *testing.T) {
	desc := NewTestPlugin("testplug").Describe()
	c := tcase{preset: desc.Preset("rgb8"), cap: sdk.CapTranslate, scores: desc.Capability(sdk.CapTranslate).Scores}
	in := sdk.NewTensor(sdk.Uint8, 2, 3, 4, 6)
	out := sdk.NewTensor(sdk.Uint8, 2, 3, 4, 6)
	if got := strings.Join(outputProblems(c, 2, in, out), "; "); got != `the answer lacks the declared score "mean"` {
		t.Errorf("no scores: problems %q", got)
	}
	out.Scores = map[string][]float64{"mean": {0.5}}
	if got := strings.Join(outputProblems(c, 2, in, out), "; "); got != `score "mean" has 1 values for 2 items` {
		t.Errorf("short scores: problems %q", got)
	}
	out.Scores["mean"] = []float64{0.5, 0.25}
	if got := outputProblems(c, 2, in, out); len(got) != 0 {
		t.Errorf("good scores: problems %q", got)
	}
}
