package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/client"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

// serveEnv makes the test binary serve the test plugin instead of running
// tests, so every test here talks to a real plugin process.
const serveEnv = "SDK_TEST_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) != "" {
		sdk.Serve(sdktest.NewTestPlugin("testplug"))
		return
	}
	os.Exit(m.Run())
}

func start(t testing.TB) *sdktest.Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return sdktest.Start(t, sdktest.Config{Command: []string{exe}, Env: []string{serveEnv + "=1"}, Timeout: 30 * time.Second})
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func load(t testing.TB, p *sdktest.Process, c sdk.Capability, preset string, params sdk.Params) client.Handle {
	t.Helper()
	h, err := p.Client.Load(ctx(t), sdk.LoadRequest{Capability: c, Preset: preset, Params: params})
	if err != nil {
		t.Fatalf("load %s %s: %v", preset, c, err)
	}
	return h
}

func randomFloat(n, c, h, w int, seed uint64) *sdk.Tensor {
	rng := rand.New(rand.NewPCG(seed, 1))
	v := make([]float32, n*c*h*w)
	for i := range v {
		v[i] = rng.Float32()
	}
	return sdk.FromFloat32(v, n, c, h, w)
}

func randomUint8(n, c, h, w int, seed uint64) *sdk.Tensor {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n*c*h*w)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return sdk.FromUint8(b, n, c, h, w)
}

// TestLargeBatchRoundTrip sends 16 RGB 512x512 float32 images (48 MiB, far
// above gRPC's 4 MiB default) through a real plugin process.
func TestLargeBatchRoundTrip(t *testing.T) {
	p := start(t)
	in := randomFloat(16, 3, 512, 512, 1)
	if len(in.Data) <= 4<<20*10 {
		t.Fatalf("test batch is only %d bytes", len(in.Data))
	}
	h := load(t, p, sdk.CapTranslate, "rgb", nil)
	out, err := p.Client.Translate(ctx(t), h, &sdk.Batch{Tensor: in})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Shape, in.Shape) || out.DType != in.DType || string(out.Data) != string(in.Data) {
		t.Fatalf("identity translate of %v changed the batch: got %v %s", in.Shape, out.Shape, out.DType)
	}
	// The scores of the three calls the batch was split into come back
	// joined, one per item, each the item's own.
	mean := out.Scores["mean"]
	if len(mean) != 16 {
		t.Fatalf("translate's score mean has %d values for 16 items (scores %v)", len(mean), len(out.Scores))
	}
	per := in.ItemBytes() / 4
	for i, got := range mean {
		sum := 0.0
		for _, v := range in.Float32s()[i*per : (i+1)*per] {
			sum += float64(v)
		}
		if want := sum / float64(per); math.Abs(got-want) > 1e-6 {
			t.Errorf("item %d: score mean %v, the item's mean is %v", i, got, want)
		}
	}
	if st, ok := p.Client.SharedMemoryStats(); sharedMemoryExpected() && (!ok || st.Calls < 3 || st.Fallbacks > 0) {
		t.Errorf("the 48 MiB batch did not go through shared memory in 3 calls: %+v (in use: %v)", st, ok)
	}

	he := load(t, p, sdk.CapEncode, "rgb", nil)
	lat, err := p.Client.Encode(ctx(t), he, &sdk.Batch{Tensor: in})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(lat.Shape, []int{16, 3}) || lat.Space != "testplug/rgb-mean" {
		t.Fatalf("encode: got %v %q, want [16 3] testplug/rgb-mean", lat.Shape, lat.Space)
	}
	if m := lat.Float32s()[0]; math.Abs(float64(m)-0.5) > 0.01 {
		t.Errorf("encode: mean of uniform noise is %v, want ~0.5", m)
	}
}

func TestItemTooLarge(t *testing.T) {
	p := start(t)
	h := load(t, p, sdk.CapTranslate, "rgb", nil)
	in := sdk.NewTensor(sdk.Float32, 1, 3, 3000, 3000) // 108 MB in one item
	_, err := p.Client.Translate(ctx(t), h, &sdk.Batch{Tensor: in})
	if !errors.Is(err, client.ErrTooLarge) || !strings.Contains(err.Error(), "one item is 108000000 bytes") {
		t.Fatalf("got %v, want ErrTooLarge naming the item size", err)
	}
}

func TestPanicBecomesError(t *testing.T) {
	p := start(t)
	h := load(t, p, sdk.CapTranslate, "gray28", nil)
	in := randomUint8(2, 1, 28, 28, 2)
	_, err := p.Client.Translate(ctx(t), h, &sdk.Batch{Tensor: in, Seeds: []uint64{1, sdktest.SeedPanic}})
	if err == nil || !errors.Is(err, client.ErrPanic) {
		t.Fatalf("got %v, want ErrPanic", err)
	}
	if want := "plugin testplug: translate: panic: injected panic"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if _, err := p.Client.Translate(ctx(t), h, &sdk.Batch{Tensor: in}); err != nil {
		t.Fatalf("call after a panic: %v", err)
	}
	// The stack reaches the host's log through the plugin's stderr, which
	// go-plugin copies asynchronously: on a loaded machine it can arrive
	// after the call's answer.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.Logs(), "goroutine") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.Logs(), "goroutine") || p.Exited() {
		t.Errorf("expected the plugin alive and its stack in the log; exited=%v, log:\n%s", p.Exited(), p.Logs())
	}
}

// TestCancellationCrossesBoundary checks that cancelling the host's context
// cancels the context the implementation sees.
func TestCancellationCrossesBoundary(t *testing.T) {
	p := start(t)
	h := load(t, p, sdk.CapDenoise, "gray28", nil)
	in := &sdk.Batch{Tensor: randomUint8(1, 1, 28, 28, 3), Seeds: []uint64{sdktest.SeedBlock}}
	c, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := p.Client.Denoise(c, h, in)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if !waitFor(10*time.Second, func() bool { return strings.Contains(p.Logs(), "observed cancellation") }) {
		t.Fatalf("the plugin did not see the cancellation; log:\n%s", p.Logs())
	}

	c, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Client.Denoise(c, h, in); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
}

func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestLoadErrors(t *testing.T) {
	p := start(t)
	tests := []struct {
		name   string
		req    sdk.LoadRequest
		want   string
		target error
	}{
		{"unknown capability", sdk.LoadRequest{Capability: "upscale"}, `capability "upscale" is not declared (declared: denoise, encode, generate, train, translate)`, client.ErrInvalid},
		{"train", sdk.LoadRequest{Capability: sdk.CapTrain}, "train is not loaded", client.ErrInvalid},
		{"unknown preset", sdk.LoadRequest{Capability: sdk.CapTranslate, Preset: "gray29"}, `unknown preset "gray29" (presets: gray28, rgb, rgb8, up2); did you mean "gray28"?`, client.ErrInvalid},
		{"preset lacks capability", sdk.LoadRequest{Capability: sdk.CapEncode, Preset: "rgb8"}, `preset "rgb8" does not support encode`, client.ErrInvalid},
		{"unknown param", sdk.LoadRequest{Capability: sdk.CapTranslate, Params: sdk.Params{"gian": 2}}, `gian: unknown parameter "gian" (did you mean "gain"?)`, client.ErrInvalid},
		{"out of range", sdk.LoadRequest{Capability: sdk.CapTranslate, Params: sdk.Params{"gain": 11}}, "gain: 11 is out of range [0, 10]", client.ErrInvalid},
		{"not in enum", sdk.LoadRequest{Capability: sdk.CapTranslate, Params: sdk.Params{"op": "edgse"}}, `op: "edgse" is not one of scale, invert, edges, standardize (did you mean "edges"?)`, client.ErrInvalid},
		{"wrong type", sdk.LoadRequest{Capability: sdk.CapTranslate, Params: sdk.Params{"delay_ms": "soon"}}, `delay_ms: expected int, got string "soon"`, client.ErrInvalid},
		{"every problem at once", sdk.LoadRequest{Capability: sdk.CapTranslate, Params: sdk.Params{"gain": -1, "op": "x"}}, "invalid parameters: gain: -1 is out of range [0, 10]; op:", client.ErrInvalid},
		{"plugin error", sdk.LoadRequest{Capability: sdk.CapTranslate, Weights: "/nonexistent/w.json"}, "plugin testplug: load: weights: open /nonexistent/w.json", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Client.Load(ctx(t), tt.req)
			if err == nil {
				t.Fatal("load succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "plugin testplug: load: ") {
				t.Errorf("error %q\nwant it to contain %q", err, tt.want)
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Errorf("error %v is not %v", err, tt.target)
			}
			if tt.target == nil && errors.Is(err, client.ErrInvalid) {
				t.Errorf("plugin error %v reported as ErrInvalid", err)
			}
		})
	}
}

func TestCallErrors(t *testing.T) {
	p := start(t)
	gray := load(t, p, sdk.CapTranslate, "gray28", nil)
	rgb8 := load(t, p, sdk.CapTranslate, "rgb8", nil)
	gen := load(t, p, sdk.CapGenerate, "gray28", nil)
	unloaded := load(t, p, sdk.CapTranslate, "gray28", nil)
	if err := p.Client.Unload(ctx(t), unloaded); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"seeds per item", func() error {
			_, err := p.Client.Translate(ctx(t), gray, &sdk.Batch{Tensor: randomUint8(3, 1, 28, 28, 1), Seeds: []uint64{1, 2}})
			return err
		}, "2 seeds for 3 items"},
		{"channels", func() error {
			_, err := p.Client.Translate(ctx(t), rgb8, &sdk.Batch{Tensor: randomUint8(2, 1, 8, 8, 1)})
			return err
		}, "plugin testplug: translate: input is 1x8x8 uint8, expected 3x*x* uint8"},
		{"size and dtype", func() error {
			_, err := p.Client.Translate(ctx(t), gray, &sdk.Batch{Tensor: randomFloat(2, 1, 32, 32, 1)})
			return err
		}, "input is 1x32x32 float32, expected 1x28x28 uint8"},
		{"not images", func() error {
			_, err := p.Client.Translate(ctx(t), gray, &sdk.Batch{Tensor: sdk.NewTensor(sdk.Uint8, 2, 784)})
			return err
		}, "input of shape [2 784], expected images N x C x H x W"},
		{"label range", func() error {
			_, err := p.Client.Generate(ctx(t), gen, sdk.GenerateRequest{Seeds: []uint64{1, 2}, Labels: []int{3, 10}})
			return err
		}, `label 10 of item 1 is out of range: preset "gray28" has 10 classes`},
		{"latent dim", func() error {
			_, err := p.Client.Generate(ctx(t), gen, sdk.GenerateRequest{Latents: sdk.NewTensor(sdk.Float32, 2, 3)})
			return err
		}, `latents "" of dim 3, expected "testplug/gray-mean" of dim 1`},
		{"unloaded handle", func() error {
			_, err := p.Client.Translate(ctx(t), unloaded, &sdk.Batch{Tensor: randomUint8(1, 1, 28, 28, 1)})
			return err
		}, "unknown model handle"},
		{"wrong capability for handle", func() error {
			_, err := p.Client.Denoise(ctx(t), gray, &sdk.Batch{Tensor: randomUint8(1, 1, 28, 28, 1)})
			return err
		}, "was loaded for translate, not denoise"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if !errors.Is(err, client.ErrInvalid) {
				t.Errorf("%v is not ErrInvalid", err)
			}
		})
	}
}

func TestDescribeRoundTrip(t *testing.T) {
	p := start(t)
	got, err := p.Client.Describe(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := sdktest.NewTestPlugin("testplug").Describe()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("description changed on the wire:\ngot  %+v\nwant %+v", got, want)
	}
}

func TestGenerateIsPerSeed(t *testing.T) {
	p := start(t)
	h := load(t, p, sdk.CapGenerate, "gray28", sdk.Params{"amplitude": 0.5})
	seeds := []uint64{5, 6, 7, 8}
	all, err := p.Client.Generate(ctx(t), h, sdk.GenerateRequest{Seeds: seeds})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(all.Shape, []int{4, 1, 28, 28}) || all.DType != sdk.Uint8 {
		t.Fatalf("got %v %s", all.Shape, all.DType)
	}
	one, err := p.Client.Generate(ctx(t), h, sdk.GenerateRequest{Seeds: seeds[2:3]})
	if err != nil {
		t.Fatal(err)
	}
	if string(one.Data) != string(all.Slice(2, 3).Data) {
		t.Errorf("seed 7 alone differs from seed 7 in a batch")
	}
	lat, err := p.Client.Generate(ctx(t), h, sdk.GenerateRequest{Latents: sdk.FromFloat32([]float32{0, 1}, 2, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if lat.Len() != 2 || lat.Data[28*28+100] != 255 || lat.Data[100] != 0 {
		t.Errorf("generate from latents: got %v with pixels %d, %d", lat.Shape, lat.Data[100], lat.Data[28*28+100])
	}
}

func TestConcurrentCalls(t *testing.T) {
	p := start(t)
	h := load(t, p, sdk.CapTranslate, "rgb8", sdk.Params{"op": "invert"})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				in := randomUint8(4, 3, 16, 16, uint64(g*100+i))
				out, err := p.Client.Translate(ctx(t), h, &sdk.Batch{Tensor: in})
				if err != nil {
					t.Error(err)
					return
				}
				for k := range in.Data {
					if out.Data[k] != 255-in.Data[k] {
						t.Errorf("goroutine %d call %d: byte %d: got %d want %d", g, i, k, out.Data[k], 255-in.Data[k])
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestTrain trains the per-channel statistics on batches with a known mean,
// with weights padded to 3 MiB so they cross the boundary in chunks, and
// loads the result back as weights.
func TestTrain(t *testing.T) {
	p := start(t)
	const batches, n = 5, 8
	var sum float64
	var count int
	sent := 0
	next := func(context.Context) (*sdk.Batch, error) {
		if sent == batches {
			return nil, io.EOF
		}
		sent++
		b := randomUint8(n, 1, 28, 28, uint64(sent))
		for _, x := range b.Data {
			sum += float64(x) / 255
			count++
		}
		return &sdk.Batch{Tensor: b}, nil
	}
	var events []sdk.TrainEvent
	var final []byte
	err := p.Client.Train(ctx(t), sdk.TrainRequest{Preset: "gray28", Params: sdk.Params{"pad_bytes": 3 << 20}}, next,
		func(e sdk.TrainEvent) { events = append(events, e) },
		func(w []byte, isFinal bool) {
			if isFinal {
				final = w
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != batches || events[batches-1].Step != batches || events[batches-1].Metrics["items"] != batches*n {
		t.Errorf("events: %+v", events)
	}
	var st sdktest.Stats
	if err := json.Unmarshal(final, &st); err != nil {
		t.Fatalf("final weights (%d bytes): %v", len(final), err)
	}
	if want := sum / float64(count); math.Abs(st.Mean[0]-want) > 1e-6 || st.Items != batches*n || len(st.Pad) != 3<<20 {
		t.Errorf("trained mean %v over %d items (pad %d), want %v over %d (pad %d)", st.Mean, st.Items, len(st.Pad), want, batches*n, 3<<20)
	}

	path := filepath.Join(t.TempDir(), "stats.json")
	if err := os.WriteFile(path, final, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := p.Client.Load(ctx(t), sdk.LoadRequest{Capability: sdk.CapTranslate, Weights: path, Params: sdk.Params{"op": "standardize"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Client.Translate(ctx(t), h, &sdk.Batch{Tensor: randomUint8(2, 1, 28, 28, 9)}); err != nil {
		t.Fatal(err)
	}
}

func TestTrainErrors(t *testing.T) {
	p := start(t)
	boom := errors.New("disk on fire")
	err := p.Client.Train(ctx(t), sdk.TrainRequest{}, func(context.Context) (*sdk.Batch, error) { return nil, boom }, nil, nil)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "plugin testplug: train: next batch: disk on fire") {
		t.Errorf("next error: got %v", err)
	}
	err = p.Client.Train(ctx(t), sdk.TrainRequest{Params: sdk.Params{"rate": 2}}, nil, nil, nil)
	if !errors.Is(err, client.ErrInvalid) || !strings.Contains(err.Error(), "rate: 2 is out of range") {
		t.Errorf("bad params: got %v", err)
	}
	err = p.Client.Train(ctx(t), sdk.TrainRequest{Preset: "rgb"}, nil, nil, nil)
	if !errors.Is(err, client.ErrInvalid) || !strings.Contains(err.Error(), `preset "rgb" does not support train`) {
		t.Errorf("preset without train: got %v", err)
	}
	n := 0
	err = p.Client.Train(ctx(t), sdk.TrainRequest{}, func(context.Context) (*sdk.Batch, error) {
		n++
		if n > 1 {
			return nil, io.EOF
		}
		return &sdk.Batch{Tensor: randomUint8(1, 1, 28, 28, 1), Seeds: []uint64{sdktest.SeedPanic}}, nil
	}, nil, nil)
	if !errors.Is(err, client.ErrPanic) || !strings.Contains(err.Error(), "plugin testplug: train: panic: injected panic") {
		t.Errorf("panic in train: got %v", err)
	}
	if p.Exited() {
		t.Fatal("plugin died")
	}
}

// TestTrainEval feeds held-out data through TrainRequest.Eval: the test
// plugin makes two passes and fails unless both see the same items, so the
// host's pass must restart after io.EOF. Checkpoints come every
// CheckpointEvery steps, and a run without Eval gets no held-out data.
func TestTrainEval(t *testing.T) {
	p := start(t)
	const batches = 4
	train := func(eval func(context.Context) (*sdk.Batch, error)) (sdktest.Stats, int) {
		t.Helper()
		sent := 0
		next := func(context.Context) (*sdk.Batch, error) {
			if sent == batches {
				return nil, io.EOF
			}
			sent++
			return &sdk.Batch{Tensor: randomUint8(2, 1, 28, 28, uint64(sent)), Seeds: []uint64{uint64(sent), 100}}, nil
		}
		var final []byte
		checkpoints := 0
		req := sdk.TrainRequest{Params: sdk.Params{"eval_passes": 2}, Epochs: 1, Steps: batches, CheckpointEvery: 2, Eval: eval}
		err := p.Client.Train(ctx(t), req, next, nil, func(w []byte, isFinal bool) {
			if isFinal {
				final = w
			} else {
				checkpoints++
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		var st sdktest.Stats
		if err := json.Unmarshal(final, &st); err != nil {
			t.Fatal(err)
		}
		return st, checkpoints
	}

	// 3 held-out batches of 2 gray images of constant value 51 (0.2).
	pos, calls := 0, 0
	eval := func(context.Context) (*sdk.Batch, error) {
		calls++
		if pos == 3 {
			pos = 0 // the next call starts a new pass
			return nil, io.EOF
		}
		pos++
		b := sdk.NewTensor(sdk.Uint8, 2, 1, 28, 28)
		for i := range b.Data {
			b.Data[i] = 51
		}
		return &sdk.Batch{Tensor: b}, nil
	}
	st, checkpoints := train(eval)
	if st.EvalItems != 6 || len(st.EvalMean) != 1 || math.Abs(st.EvalMean[0]-0.2) > 1e-6 || calls != 8 {
		t.Errorf("held-out: %d items of mean %v in %d calls, want 6 items of mean [0.2] in 8 calls (two passes)", st.EvalItems, st.EvalMean, calls)
	}
	if checkpoints != batches/2 || st.Steps != batches {
		t.Errorf("%d checkpoints over %d steps, want %d over %d", checkpoints, st.Steps, batches/2, batches)
	}
	if st, _ := train(nil); st.EvalItems != 0 || st.Items != 2*batches {
		t.Errorf("without Eval: %d held-out items, %d training items; want 0 and %d", st.EvalItems, st.Items, 2*batches)
	}
}
