// Package sdktest is the conformance kit for pipeline plugins. A plugin
// author runs it from `go test` in the plugin's main package:
//
//	func TestConformance(t *testing.T) {
//		sdktest.Run(t, sdktest.Config{Package: "."})
//	}
//
// Run builds the plugin with `go build`, launches it as a real process
// through the host's handshake and checks, as subtests: the handshake; that
// the description is well formed; that every capability of every preset is
// callable with generated valid inputs and returns what the preset declares
// (channels, dtype, value range, and the size its output size rule gives);
// that parameters are validated; determinism for fixed seeds (and outputs
// that do not depend on the batch size); a batch larger than 4 MiB;
// cancellation; refusal of malformed input; and a short training run when
// the plugin can train. It needs no weights beyond what the plugin ships.
//
// The package also offers [Start] to launch a plugin process for one's own
// tests and [NewTestPlugin], a tiny plugin with every capability for testing
// hosts.
package sdktest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/client"
)

// Config says which plugin to test and how.
type Config struct {
	// Package is the Go package of the plugin's main, as given to `go build`
	// (relative to the test's working directory, i.e. the package under
	// test: "." for the plugin's own main package).
	Package string
	// Command runs an already built plugin: the executable and its
	// arguments. With Package set, Command holds only extra arguments.
	Command []string
	// Env adds KEY=VALUE entries to the plugin's environment.
	Env []string
	// Timeout bounds the start and each call (default 2 minutes).
	Timeout time.Duration
	// SkipTrain skips the training run even if the plugin can train.
	SkipTrain bool
	// TrainPreset is the preset to train (default: the first preset that
	// supports train, or none).
	TrainPreset string
	// TrainParams are the parameters of the training run (default: the
	// declared defaults).
	TrainParams map[string]any
	// TrainBatches is the number of data batches fed to the training run
	// (default 3).
	TrainBatches int
	// Presets limits the inference checks to these presets (default: every
	// preset), e.g. while a preset's weights are still being trained. The
	// named presets must exist.
	Presets []string
}

func (c Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 2 * time.Minute
}

// Run launches the plugin and runs every conformance check as a subtest.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	p := Start(t, cfg)
	h := newHarness(t, p, cfg)
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) { c.fn(t, h) })
	}
}

type check struct {
	name string
	fn   func(tb testing.TB, h *harness)
}

// checks are the conformance checks, in the order Run runs them.
var checks = []check{
	{"handshake", checkHandshake},
	{"describe", checkDescribe},
	{"capabilities", checkCapabilities},
	{"params", checkParams},
	{"determinism", checkDeterminism},
	{"large-batch", checkLargeBatch},
	{"cancellation", checkCancellation},
	{"invalid-input", checkInvalidInput},
	{"train", checkTrain},
}

// harness is what every check works with.
type harness struct {
	p     *Process
	cfg   Config
	desc  sdk.Description
	cases []tcase
}

// tcase is one callable (preset, capability) pair.
type tcase struct {
	preset *sdk.Preset
	cap    sdk.Capability
	// scores are the capability's declared per-item scores.
	scores []sdk.ScoreSpec
}

func (c tcase) String() string { return c.preset.Name + "/" + string(c.cap) }

func newHarness(tb testing.TB, p *Process, cfg Config) *harness {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout())
	defer cancel()
	desc, err := p.Client.Describe(ctx)
	if err != nil {
		tb.Fatalf("describe: %v", err)
	}
	h := &harness{p: p, cfg: cfg, desc: desc}
	for _, name := range cfg.Presets {
		if desc.Preset(name) == nil || name == "" {
			tb.Fatalf("Config.Presets: the plugin has no preset %q", name)
		}
	}
	for i := range h.desc.Presets {
		pr := &h.desc.Presets[i]
		if len(cfg.Presets) > 0 && !slices.Contains(cfg.Presets, pr.Name) {
			continue
		}
		for _, c := range sdk.Capabilities {
			if c != sdk.CapTrain && pr.Has(c) && h.desc.Capability(c) != nil {
				h.cases = append(h.cases, tcase{preset: pr, cap: c, scores: h.desc.Capability(c).Scores})
			}
		}
	}
	return h
}

func (h *harness) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), h.cfg.timeout())
}

// sub runs fn as a subtest when tb is a *testing.T.
func sub(tb testing.TB, name string, fn func(tb testing.TB)) {
	if t, ok := tb.(*testing.T); ok {
		t.Run(name, func(t *testing.T) { fn(t) })
		return
	}
	fn(tb)
}

func checkHandshake(tb testing.TB, h *harness) {
	if h.p.Version != client.ProtocolVersion {
		tb.Errorf("negotiated protocol version %d, expected %d", h.p.Version, client.ProtocolVersion)
	}
	if h.p.Pid <= 0 || h.p.Exited() {
		tb.Errorf("plugin process is not running (pid %d, exited %v)", h.p.Pid, h.p.Exited())
	}
}

func checkDescribe(tb testing.TB, h *harness) {
	for _, err := range sdk.ValidateDescription(h.desc) {
		tb.Errorf("%v", err)
	}
	if len(h.desc.Capabilities) == 0 {
		tb.Errorf("description declares no capabilities")
	}
}

// loadCase loads a model for c with the given parameters on top of values
// for required parameters.
func (h *harness) load(ctx context.Context, c tcase, params map[string]any) (client.Handle, error) {
	all := sdk.Params{}
	for _, p := range h.desc.Capability(c.cap).Params {
		if p.Required {
			all[p.Name] = sampleValue(&p)
		}
	}
	for k, v := range params {
		all[k] = v
	}
	return h.p.Client.Load(ctx, sdk.LoadRequest{Capability: c.cap, Preset: c.preset.Name, Params: all})
}

func (h *harness) mustLoad(tb testing.TB, c tcase) client.Handle {
	tb.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	hd, err := h.load(ctx, c, nil)
	if err != nil {
		tb.Fatalf("%s: load with default parameters: %v", c, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := h.ctx()
		defer cancel()
		_ = h.p.Client.Unload(ctx, hd)
	})
	return hd
}

// input is one generated request.
type input struct {
	batch *sdk.Batch          // encode, translate, denoise
	gen   sdk.GenerateRequest // generate
	n     int
}

func (h *harness) input(c tcase, n int, seed uint64) input {
	rng := rand.New(rand.NewPCG(seed, 7))
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = seed*1000 + uint64(i)
	}
	var labels []int
	if c.preset.Classes > 0 {
		labels = make([]int, n)
		for i := range labels {
			labels[i] = i % c.preset.Classes
		}
	}
	if c.cap == sdk.CapGenerate {
		return input{gen: sdk.GenerateRequest{Seeds: seeds, Labels: labels}, n: n}
	}
	return input{batch: &sdk.Batch{Tensor: randomImages(c.preset.Input, n, 0, rng), Seeds: seeds, Labels: labels}, n: n}
}

// slice returns items [i,j) of the input.
func (in input) slice(i, j int) input {
	out := input{n: j - i}
	if in.batch != nil {
		b := &sdk.Batch{Tensor: in.batch.Slice(i, j), Seeds: in.batch.Seeds[i:j]}
		if in.batch.Labels != nil {
			b.Labels = in.batch.Labels[i:j]
		}
		out.batch = b
		return out
	}
	out.gen = sdk.GenerateRequest{Seeds: in.gen.Seeds[i:j]}
	if in.gen.Labels != nil {
		out.gen.Labels = in.gen.Labels[i:j]
	}
	return out
}

func (h *harness) call(ctx context.Context, c tcase, hd client.Handle, in input) (*sdk.Tensor, error) {
	cl := h.p.Client
	switch c.cap {
	case sdk.CapEncode:
		return cl.Encode(ctx, hd, in.batch)
	case sdk.CapGenerate:
		return cl.Generate(ctx, hd, in.gen)
	case sdk.CapTranslate:
		return cl.Translate(ctx, hd, in.batch)
	case sdk.CapDenoise:
		return cl.Denoise(ctx, hd, in.batch)
	}
	return nil, fmt.Errorf("sdktest: capability %s is not callable", c.cap)
}

func (h *harness) mustCall(tb testing.TB, c tcase, hd client.Handle, in input) *sdk.Tensor {
	tb.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	out, err := h.call(ctx, c, hd, in)
	if err != nil {
		tb.Fatalf("%s: call with %d generated items: %v", c, in.n, err)
	}
	return out
}

func checkCapabilities(tb testing.TB, h *harness) {
	if len(h.cases) == 0 {
		tb.Skip("no preset supports a callable capability")
	}
	for _, c := range h.cases {
		sub(tb, c.String(), func(tb testing.TB) {
			hd := h.mustLoad(tb, c)
			in := h.input(c, 3, 1)
			out := h.mustCall(tb, c, hd, in)
			var like *sdk.Tensor
			if in.batch != nil {
				like = in.batch.Tensor
			}
			for _, p := range outputProblems(c, in.n, like, out) {
				tb.Errorf("%s: %s", c, p)
			}
		})
	}
}

// outputProblems checks an output against the preset's declared contract.
func outputProblems(c tcase, n int, in, out *sdk.Tensor) []string {
	var probs []string
	bad := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }
	if out == nil {
		return []string{"returned no tensor"}
	}
	if err := out.Check(); err != nil {
		return []string{err.Error()}
	}
	if out.Len() != n {
		bad("returned %d items for %d", out.Len(), n)
	}
	// A declared score is a promise to the pipeline file's keep: and the
	// manifest, so every answer must carry it (the SDK refuses undeclared
	// ones and wrong lengths before they get here).
	for _, sc := range c.scores {
		if v, ok := out.Scores[sc.Name]; !ok {
			bad("the answer lacks the declared score %q", sc.Name)
		} else if len(v) != n {
			bad("score %q has %d values for %d items", sc.Name, len(v), n)
		}
	}
	if c.cap == sdk.CapEncode || c.cap == sdk.CapGenerate && c.preset.LatentData != nil {
		lat := c.preset.Latent
		if c.cap == sdk.CapGenerate {
			lat = c.preset.LatentData
			if out.DType != sdk.Float32 {
				bad("latents of dtype %s, expected float32", out.DType)
			}
		}
		if len(out.Shape) != 2 {
			bad("latents of shape %v, expected N x %d", out.Shape, lat.Dim)
		} else if lat != nil && (out.Shape[1] != lat.Dim || out.Space != lat.Space) {
			bad("latents %q of dim %d, the preset declares %q of dim %d", out.Space, out.Shape[1], lat.Space, lat.Dim)
		}
		if out.DType == sdk.Float32 {
			for i, v := range out.Float32s() {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					bad("latent value %d is %v", i, v)
					break
				}
			}
		}
		return probs
	}
	spec := c.preset.Output
	r := len(out.Shape)
	if r != 4 && r != 5 {
		bad("output of shape %v, expected N x C x H x W", out.Shape)
		return probs
	}
	got := out.Shape[r-3:]
	inC, inH, inW := 0, 0, 0
	if in != nil {
		d := in.Shape[len(in.Shape)-3:]
		inC, inH, inW = d[0], d[1], d[2]
	}
	if wantC := cmp.Or(spec.Channels, inC); wantC != 0 && wantC != got[0] {
		bad("output has %d channels, the preset declares %d (0: same as input, here %d)", got[0], spec.Channels, inC)
	}
	if err := spec.CheckOutSize(inH, inW, got[1], got[2]); err != nil {
		bad("%v", err)
	}
	if spec.DType != 0 && out.DType != spec.DType {
		bad("output dtype %s, the preset declares %s", out.DType, spec.DType)
	}
	if spec.Max > spec.Min {
		tol := 1e-4 * (spec.Max - spec.Min)
		for i, v := range out.Float32s() {
			if math.IsNaN(float64(v)) || v < spec.Min-tol || v > spec.Max+tol {
				bad("output value %v at element %d is outside the declared range [%v, %v]", v, i, spec.Min, spec.Max)
				break
			}
		}
	}
	return probs
}

func checkParams(tb testing.TB, h *harness) {
	for _, cs := range h.desc.Capabilities {
		if cs.Name == sdk.CapTrain {
			continue
		}
		var c tcase
		for _, x := range h.cases {
			if x.cap == cs.Name {
				c = x
				break
			}
		}
		if c.preset == nil {
			continue
		}
		sub(tb, string(cs.Name), func(tb testing.TB) {
			refused := func(what string, params map[string]any, mention string) {
				tb.Helper()
				ctx, cancel := h.ctx()
				defer cancel()
				hd, err := h.load(ctx, c, params)
				if err == nil {
					_ = h.p.Client.Unload(ctx, hd)
					tb.Errorf("%s: load accepted %s %v", c, what, params)
					return
				}
				if mention != "" && !strings.Contains(err.Error(), mention) {
					tb.Errorf("%s: load refused %s but the error does not name %q: %v", c, what, mention, err)
				}
			}
			refused("an unknown parameter", map[string]any{"sdktest_no_such_param": 1}, "sdktest_no_such_param")
			for _, p := range cs.Params {
				for _, v := range badValues(&p) {
					refused(fmt.Sprintf("a bad value for %q:", p.Name), map[string]any{p.Name: v}, p.Name)
				}
				for _, e := range p.Enum {
					if p.Type != sdk.String {
						continue
					}
					ctx, cancel := h.ctx()
					hd, err := h.load(ctx, c, map[string]any{p.Name: e})
					if err != nil {
						tb.Errorf("%s: load refused the declared enum value %s=%q: %v", c, p.Name, e, err)
					} else {
						_ = h.p.Client.Unload(ctx, hd)
					}
					cancel()
				}
			}
			ctx, cancel := h.ctx()
			defer cancel()
			if hd, err := h.p.Client.Load(ctx, sdk.LoadRequest{Capability: c.cap, Preset: "sdktest-no-such-preset"}); err == nil {
				_ = h.p.Client.Unload(ctx, hd)
				tb.Errorf("%s: load accepted the unknown preset %q", cs.Name, "sdktest-no-such-preset")
			}
		})
	}
}

// badValues returns values that the parameter's spec must refuse.
func badValues(p *sdk.Param) []any {
	var out []any
	switch p.Type {
	case sdk.String:
		out = append(out, 12345)
		if len(p.Enum) > 0 {
			out = append(out, "sdktest-not-in-enum")
		}
		if p.Pattern != "" || p.Format != "" {
			// The first of a few unlikely strings that the declared
			// pattern or format refuses.
			for _, v := range []string{"sdktest: not matching!", "", "#", "0", "Z"} {
				if _, errs := sdk.CheckParams([]sdk.Param{*p}, map[string]any{p.Name: v}, ""); len(errs) > 0 {
					out = append(out, v)
					break
				}
			}
		}
	case sdk.Int, sdk.Float:
		out = append(out, "not a number")
		if p.Min != nil {
			out = append(out, *p.Min-math.Max(1, math.Abs(*p.Min)))
		}
		if p.Max != nil {
			out = append(out, *p.Max+math.Max(1, math.Abs(*p.Max)))
		}
		if p.Type == sdk.Int {
			lo := 0.5
			if p.Min != nil {
				lo = math.Floor(*p.Min) + 0.5
			}
			if p.Max == nil || lo < *p.Max {
				out = append(out, lo)
			}
		}
	case sdk.Bool:
		out = append(out, "yes")
	case sdk.Object:
		out = append(out, 42)
	}
	return out
}

// sampleValue returns a valid value for a parameter (for required ones).
func sampleValue(p *sdk.Param) any {
	if p.Default != nil {
		return p.Default
	}
	switch p.Type {
	case sdk.String:
		if len(p.Enum) > 0 {
			return p.Enum[0]
		}
		switch p.Format {
		case sdk.FormatColor:
			return "#808080"
		case sdk.FormatDuration:
			return "1s"
		case sdk.FormatImage:
			return grayPNG
		}
		if p.Pattern != "" {
			if v, ok := matching(p.Pattern); ok {
				return v
			}
		}
		return "x"
	case sdk.Int, sdk.Float:
		v := 0.0
		if p.Min != nil {
			v = *p.Min
		} else if p.Max != nil && *p.Max < 0 {
			v = *p.Max
		}
		if p.Type == sdk.Int {
			return int(math.Ceil(v))
		}
		return v
	case sdk.Bool:
		return false
	case sdk.List:
		if len(p.Enum) > 0 {
			return p.Enum[0]
		}
		return []any{}
	case sdk.Object:
		m := map[string]any{}
		for _, f := range p.Fields {
			if f.Required || p.OneOf {
				m[f.Name] = sampleValue(&f)
				if p.OneOf {
					break
				}
			}
		}
		return m
	}
	return nil
}

func checkDeterminism(tb testing.TB, h *harness) {
	if len(h.cases) == 0 {
		tb.Skip("no preset supports a callable capability")
	}
	for _, c := range h.cases {
		sub(tb, c.String(), func(tb testing.TB) {
			hd := h.mustLoad(tb, c)
			in := h.input(c, 3, 2)
			a := h.mustCall(tb, c, hd, in)
			b := h.mustCall(tb, c, hd, in)
			if !equal(a, b) {
				tb.Errorf("%s: two calls with the same inputs and seeds gave different outputs", c)
			}
			hd2 := h.mustLoad(tb, c)
			if d := h.mustCall(tb, c, hd2, in); !equal(a, d) {
				tb.Errorf("%s: a second load of the same preset and parameters gave different outputs", c)
			}
			// An item's output must not depend on the batch it travels in.
			for i := 0; i < in.n; i++ {
				one := h.mustCall(tb, c, hd, in.slice(i, i+1))
				if msg := closeEnough(a.Slice(i, i+1), one, c); msg != "" {
					tb.Errorf("%s: item %d alone differs from the same item in a batch of %d: %s", c, i, in.n, msg)
					break
				}
			}
		})
	}
}

// closeEnough compares two outputs with a tolerance for float rounding that
// batched kernels may legitimately introduce.
func closeEnough(a, b *sdk.Tensor, c tcase) string {
	if a.DType != b.DType || fmt.Sprint(a.Shape) != fmt.Sprint(b.Shape) {
		return fmt.Sprintf("%s %v vs %s %v", a.DType, a.Shape, b.DType, b.Shape)
	}
	tol := float32(1e-4)
	if a.DType == sdk.Uint8 {
		tol = 1
	} else if c.preset.Output != nil && c.preset.Output.Max > c.preset.Output.Min {
		tol *= c.preset.Output.Max - c.preset.Output.Min
	}
	av, bv := a.Float32s(), b.Float32s()
	for i := range av {
		if d := av[i] - bv[i]; d > tol || d < -tol || av[i] != av[i] || bv[i] != bv[i] {
			return fmt.Sprintf("element %d: %v vs %v", i, av[i], bv[i])
		}
	}
	for name, x := range a.Scores {
		y := b.Scores[name]
		if len(x) != len(y) {
			return fmt.Sprintf("score %q: %d vs %d values", name, len(x), len(y))
		}
		for i := range x {
			if d := math.Abs(x[i] - y[i]); d > 1e-4*max(1, math.Abs(x[i])) || x[i] != x[i] != (y[i] != y[i]) {
				return fmt.Sprintf("score %q of item %d: %v vs %v", name, i, x[i], y[i])
			}
		}
	}
	return ""
}

// largeBytes is the size the large-batch check exceeds: gRPC's default
// message limit.
const largeBytes = 4<<20 + 256<<10

func checkLargeBatch(tb testing.TB, h *harness) {
	// Prefer image to image (both the request and the response are large),
	// then encode (a large request), then generate (a large response).
	var pick *tcase
	rank := func(c tcase) int {
		switch c.cap {
		case sdk.CapTranslate, sdk.CapDenoise:
			return 3
		case sdk.CapEncode:
			return 2
		}
		if o := c.preset.Output; o != nil && o.Channels > 0 && o.Height > 0 && o.Width > 0 {
			return 1
		}
		return 0
	}
	for i, c := range h.cases {
		if rank(c) > 0 && (pick == nil || rank(c) > rank(*pick)) {
			pick = &h.cases[i]
		}
	}
	if pick == nil {
		tb.Skip("no capability takes images or generates images of a declared size")
	}
	c := *pick
	var item int
	if c.cap == sdk.CapGenerate {
		o := c.preset.Output
		item = o.Channels * o.Height * o.Width * max(1, o.DType.Size())
	} else {
		item = h.input(c, 1, 3).batch.ItemBytes()
	}
	n := max(2, (largeBytes+item-1)/item)
	hd := h.mustLoad(tb, c)
	in := h.input(c, n, 3)
	out := h.mustCall(tb, c, hd, in)
	var like *sdk.Tensor
	if in.batch != nil {
		like = in.batch.Tensor
	}
	for _, p := range outputProblems(c, n, like, out) {
		tb.Errorf("%s: batch of %d items (%d bytes each): %s", c, n, item, p)
	}
}

// within fails the test when fn does not return in d: a hang is the failure
// this guards against, not slowness.
func within(tb testing.TB, d time.Duration, what string, fn func()) {
	tb.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		tb.Fatalf("%s did not return within %v", what, d)
	}
}

func checkCancellation(tb testing.TB, h *harness) {
	if len(h.cases) == 0 {
		tb.Skip("no preset supports a callable capability")
	}
	c := h.cases[0]
	hd := h.mustLoad(tb, c)
	in := h.input(c, 4, 4)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var err error
	within(tb, h.cfg.timeout(), "a call with a cancelled context", func() { _, err = h.call(ctx, c, hd, in) })
	if err == nil {
		tb.Errorf("%s: a call with a cancelled context returned no error", c)
	} else if !errors.Is(err, context.Canceled) {
		tb.Errorf("%s: a call with a cancelled context returned %v, expected an error wrapping context.Canceled", c, err)
	}

	// Cancel while the call is in flight: it must return (with a result or
	// an error) and leave the plugin serving.
	big := h.input(c, 64, 5)
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(2*time.Millisecond, cancel)
	within(tb, h.cfg.timeout(), "a call cancelled in flight", func() { _, _ = h.call(ctx, c, hd, big) })
	cancel()

	h.mustCall(tb, c, hd, in)
	if h.p.Exited() {
		tb.Errorf("plugin process exited after cancellation")
	}
}

func checkInvalidInput(tb testing.TB, h *harness) {
	var c *tcase
	for i, x := range h.cases {
		if x.cap != sdk.CapGenerate {
			c = &h.cases[i]
			break
		}
	}
	if c == nil {
		tb.Skip("no capability takes images")
	}
	hd := h.mustLoad(tb, *c)
	spec := c.preset.Input
	var t *sdk.Tensor
	if spec.Channels > 0 {
		bad := *spec
		bad.Channels++
		t = randomImages(&bad, 2, 0, rand.New(rand.NewPCG(9, 9)))
	} else {
		t = sdk.NewTensor(orDefault(spec.DType), 2, 3) // not an image batch at all
	}
	ctx, cancel := h.ctx()
	defer cancel()
	_, err := h.call(ctx, *c, hd, input{batch: &sdk.Batch{Tensor: t}, n: 2})
	if err == nil {
		tb.Errorf("%s: a batch of shape %v %s was accepted; the preset declares input %s", c, t.Shape, t.DType, specString(spec))
	}
	if h.p.Exited() {
		tb.Fatalf("%s: the plugin process died on invalid input", c)
	}
	h.mustCall(tb, *c, hd, h.input(*c, 1, 6))
}

func checkTrain(tb testing.TB, h *harness) {
	cs := h.desc.Capability(sdk.CapTrain)
	if cs == nil {
		tb.Skip("the plugin does not declare train")
	}
	if h.cfg.SkipTrain {
		tb.Skip("Config.SkipTrain")
	}
	preset := h.cfg.TrainPreset
	var spec *sdk.ImageSpec
	var trained *sdk.Preset
	classes := 0
	for i, p := range h.desc.Presets {
		if (preset == "" && p.Has(sdk.CapTrain)) || (preset != "" && p.Name == preset) {
			preset, spec, classes, trained = p.Name, p.Input, p.Classes, &h.desc.Presets[i]
			if spec == nil {
				spec = p.Output
			}
			break
		}
	}
	batches := h.cfg.TrainBatches
	if batches <= 0 {
		batches = 3
	}
	rng := rand.New(rand.NewPCG(11, 11))
	sent := 0
	next := func(context.Context) (*sdk.Batch, error) {
		if sent == batches {
			return nil, io.EOF
		}
		sent++
		const n = 4
		var t *sdk.Tensor
		if trained != nil && trained.LatentData != nil {
			// A model of latents trains on vectors of its space.
			ld := trained.LatentData
			v := make([]float32, n*ld.Dim)
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
			t = sdk.FromFloat32(v, n, ld.Dim)
			t.Space = ld.Space
		} else {
			t = randomImages(spec, n, 0, rng)
		}
		b := &sdk.Batch{Tensor: t, Seeds: make([]uint64, n)}
		for i := range b.Seeds {
			b.Seeds[i] = uint64(sent*n + i)
		}
		if classes > 0 {
			b.Labels = make([]int, n)
			for i := range b.Labels {
				b.Labels[i] = (sent*n + i) % classes
			}
		}
		return b, nil
	}
	var final []byte
	events, grids := 0, 0
	ctx, cancel := h.ctx()
	defer cancel()
	// Samples are optional; those a plugin sends must be images of the
	// preset's output contract, as generate's are.
	onEvent := func(ev sdk.TrainEvent) {
		events++
		if ev.Samples == nil {
			return
		}
		grids++
		probs := []string(nil)
		if trained != nil {
			probs = outputProblems(tcase{preset: trained, cap: sdk.CapGenerate}, ev.Samples.Len(), nil, ev.Samples)
		}
		if ev.SampleColumns < 0 {
			probs = append(probs, fmt.Sprintf("%d sample columns", ev.SampleColumns))
		}
		for _, p := range probs {
			tb.Errorf("train: samples at step %d: %s", ev.Step, p)
		}
	}
	err := h.p.Client.Train(ctx, sdk.TrainRequest{Preset: preset, Params: h.cfg.TrainParams, SampleEvery: 2}, next,
		onEvent,
		func(w []byte, isFinal bool) {
			if isFinal {
				final = append([]byte(nil), w...)
			}
		})
	if err != nil {
		tb.Fatalf("train (preset %q, %d batches): %v", preset, batches, err)
	}
	if sent == 0 {
		tb.Errorf("train: the plugin never asked for a data batch")
	}
	if len(final) == 0 {
		tb.Errorf("train: the plugin returned without saving final weights (TrainSession.Save(w, true))")
	}
	tb.Logf("train: %d batches, %d events (%d with samples), %d bytes of final weights", sent, events, grids, len(final))

	err = h.p.Client.Train(ctx, sdk.TrainRequest{Preset: preset, Params: sdk.Params{"sdktest_no_such_param": 1}},
		func(context.Context) (*sdk.Batch, error) { return nil, io.EOF }, nil, nil)
	if err == nil {
		tb.Errorf("train accepted an unknown parameter")
	}
}

func orDefault(d sdk.DType) sdk.DType {
	if d == 0 {
		return sdk.Float32
	}
	return d
}

func specString(s *sdk.ImageSpec) string {
	return fmt.Sprintf("%dx%dx%d %s (0: any)", s.Channels, s.Height, s.Width, s.DType)
}

// randomImages draws n images uniformly within the spec's range; sizes the
// spec leaves open are 3 channels and 32x32 pixels (or size, when not zero).
func randomImages(spec *sdk.ImageSpec, n, size int, rng *rand.Rand) *sdk.Tensor {
	if spec == nil {
		spec = &sdk.ImageSpec{}
	}
	if size == 0 {
		size = 32
	}
	c, hh, w := spec.Channels, spec.Height, spec.Width
	if c == 0 {
		c = 3
	}
	if hh == 0 {
		hh = size
	}
	if w == 0 {
		w = size
	}
	dt := orDefault(spec.DType)
	lo, hi := float64(spec.Min), float64(spec.Max)
	if !(hi > lo) {
		lo, hi = 0, 1
		if dt == sdk.Uint8 {
			hi = 255
		}
	}
	t := sdk.NewTensor(dt, n, c, hh, w)
	if dt == sdk.Uint8 {
		for i := range t.Data {
			t.Data[i] = uint8(math.Round(lo + rng.Float64()*(hi-lo)))
		}
		return t
	}
	v := make([]float32, t.NumElements())
	for i := range v {
		v[i] = float32(lo + rng.Float64()*(hi-lo))
	}
	return sdk.FromFloat32(v, n, c, hh, w)
}

// equal reports whether two tensors are identical, bytes included.
func equal(a, b *sdk.Tensor) bool {
	return a.DType == b.DType && a.Space == b.Space && fmt.Sprint(a.Shape) == fmt.Sprint(b.Shape) && string(a.Data) == string(b.Data) && fmt.Sprint(a.Scores) == fmt.Sprint(b.Scores)
}

// matching returns a short string that pattern matches as a whole, for a
// required parameter: the first branch of every alternation, the least
// repetition, the first character of every class. ok is false when that
// string does not match (word boundaries and the like).
func matching(pattern string) (string, bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", false
	}
	var b strings.Builder
	var walk func(r *syntax.Regexp)
	walk = func(r *syntax.Regexp) {
		switch r.Op {
		case syntax.OpLiteral:
			b.WriteString(string(r.Rune))
		case syntax.OpCharClass:
			if len(r.Rune) > 0 {
				b.WriteRune(r.Rune[0])
			}
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			b.WriteByte('a')
		case syntax.OpCapture, syntax.OpPlus:
			walk(r.Sub[0])
		case syntax.OpRepeat:
			for range r.Min {
				walk(r.Sub[0])
			}
		case syntax.OpConcat:
			for _, s := range r.Sub {
				walk(s)
			}
		case syntax.OpAlternate:
			walk(r.Sub[0])
		}
	}
	walk(re)
	v := b.String()
	ok, _ := regexp.MatchString(sdk.AnchoredPattern(pattern), v)
	return v, ok
}

// grayPNG is a valid image parameter value (sdk.FormatImage): an 8x8
// mid-gray png as a data URL, as the host hands it to a plugin.
var grayPNG = func() string {
	img := image.NewGray(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = 128
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return sdk.ImageDataURL("image/png", buf.Bytes())
}()
