package vae

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/safetensors"
	"github.com/genpipe/genpipe/sdk/sdktest"
	"github.com/hashicorp/go-hclog"
)

const mnistTest = "../../examples/data/mnist/t10k-images-idx3-ubyte.gz"

// readIdx reads the first n images of an MNIST idx3 file as one uint8
// NCHW tensor.
func readIdx(t testing.TB, path string, n int) *sdk.Tensor {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var hdr [4]uint32
	if err := binary.Read(zr, binary.BigEndian, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr[0] != 0x803 || hdr[2] != 28 || hdr[3] != 28 || int(hdr[1]) < n {
		t.Fatalf("%s: unexpected idx header %x", path, hdr)
	}
	buf := make([]byte, n*28*28)
	if _, err := io.ReadFull(zr, buf); err != nil {
		t.Fatal(err)
	}
	return sdk.FromUint8(buf, n, 1, 28, 28)
}

// writeWeights saves a freshly initialised model of arch (with its arch
// metadata) and returns the file.
func writeWeights(t *testing.T, dir string, a Arch, edit func(*safetensors.File)) string {
	t.Helper()
	m, err := NewModel(a, nn.NewRNG(5))
	if err != nil {
		t.Fatal(err)
	}
	f := &safetensors.File{Metadata: map[string]string{"arch": a.JSON()}, Tensors: m.Params.Tensors()}
	if edit != nil {
		edit(f)
	}
	path := filepath.Join(dir, string(a.Variant)+".safetensors")
	if err := f.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func load(t *testing.T, preset, weights string, c sdk.Capability, params sdk.Params) (sdk.Model, error) {
	t.Helper()
	p := New()
	var spec *sdk.CapabilitySpec
	d := p.Describe()
	spec = d.Capability(c)
	full, errs := sdk.CheckParams(spec.Params, params, "")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return p.Load(context.Background(), sdk.LoadRequest{Capability: c, Preset: preset, Weights: weights, Params: full, Logger: hclog.NewNullLogger()})
}

// TestLoadRefusesBadWeights: every kind of bad weights file is refused at
// load time with an error that names the file and what is wrong with it.
func TestLoadRefusesBadWeights(t *testing.T) {
	dir := t.TempDir()
	vaeArch := findPreset("mnist-vae").arch
	good := writeWeights(t, dir, vaeArch, nil)
	if _, err := load(t, "mnist-vae", good, sdk.CapEncode, nil); err != nil {
		t.Fatalf("good weights: %v", err)
	}
	png := filepath.Join(dir, "image.png")
	os.WriteFile(png, []byte("\x89PNG\r\n\x1a\n0000000000000000"), 0o644)
	raw, _ := os.ReadFile(good)
	trunc := filepath.Join(dir, "truncated.safetensors")
	os.WriteFile(trunc, raw[:len(raw)/2], 0o644)
	missing := writeWeights(t, t.TempDir(), vaeArch, func(f *safetensors.File) {
		f.Metadata = nil
		f.Tensors = f.Tensors[1:]
	})
	shaped := writeWeights(t, t.TempDir(), vaeArch, func(f *safetensors.File) {
		f.Metadata = nil
		for i, ts := range f.Tensors {
			if ts.Name == "fc_mu.bias" {
				f.Tensors[i] = safetensors.F32("fc_mu.bias", []int{7}, make([]float32, 7))
			}
		}
	})
	other := writeWeights(t, t.TempDir(), findPreset("mnist-ae").arch, nil)
	for _, c := range []struct{ name, path, want string }{
		{"not safetensors", png, "PNG"},
		{"truncated", trunc, "truncated.safetensors"},
		{"missing tensor", missing, `"encoder.0.weight": missing`},
		{"mis-shaped tensor", shaped, `"fc_mu.bias": shape [7], want [32]`},
		{"other architecture", other, `weights are for architecture {"variant":"ae"`},
		{"no such file", filepath.Join(dir, "nope.safetensors"), "nope.safetensors"},
	} {
		_, err := load(t, "mnist-vae", c.path, sdk.CapEncode, nil)
		if err == nil {
			t.Errorf("%s: loaded", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Base(c.path)) {
			t.Errorf("%s: error %q should name the file and contain %q", c.name, err, c.want)
		}
	}
}

func trainReq(t *testing.T, preset string, steps int, params sdk.Params) sdk.TrainRequest {
	full, errs := sdk.CheckParams(TrainParams, params, "")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return sdk.TrainRequest{Preset: preset, Params: full, Seed: 9, Epochs: 1, Steps: steps}
}

// testBatches returns steps batches of bs MNIST test digits.
func testBatches(t testing.TB, steps, bs int) []*sdk.Batch {
	all := readIdx(t, mnistTest, steps*bs)
	var batches []*sdk.Batch
	for i := 0; i < steps; i++ {
		batches = append(batches, &sdk.Batch{Tensor: all.Slice(i*bs, (i+1)*bs)})
	}
	return batches
}

// TestTrainResumeIsExact trains on real MNIST digits for 12 steps straight,
// and again as 6 steps, a checkpoint, and 6 more from it: the final weights
// must be identical byte for byte (parameters, Adam moments, RNG and the
// schedule all come back), and the loss must have gone down.
func TestTrainResumeIsExact(t *testing.T) {
	const steps, bs = 12, 16
	batches := testBatches(t, steps, bs)
	for _, preset := range []string{"mnist-vae", "mnist-dae"} {
		t.Run(preset, func(t *testing.T) {
			params := sdk.Params{"log_every": 1}
			straight := &sdktest.Session{Req: trainReq(t, preset, steps, params), Batches: batches}
			straight.Req.CheckpointEvery = 6
			if err := New().(*Plugin).Train(context.Background(), straight); err != nil {
				t.Fatal(err)
			}
			first, last := straight.Events[0].Metrics["loss"], straight.Events[steps-1].Metrics["loss"]
			if !(last < first) {
				t.Errorf("loss did not go down over %d steps: %v -> %v", steps, first, last)
			}
			part := &sdktest.Session{Req: trainReq(t, preset, steps, params), Batches: batches, StopAt: 6}
			part.Req.CheckpointEvery = 6
			if err := New().(*Plugin).Train(context.Background(), part); err != nil {
				t.Fatal(err)
			}
			rest := &sdktest.Session{Req: trainReq(t, preset, steps, params), Batches: batches, Pos: 6}
			rest.Req.Resume = part.Checkpoint
			if err := New().(*Plugin).Train(context.Background(), rest); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rest.Final, straight.Final) {
				t.Errorf("resumed run's weights differ from the straight run's")
			}
		})
	}
}

// TestTrainSamples: with SampleEvery set, training reports progress grids
// (a VAE's prior samples from the start; an AE's or DAE's inputs beside
// their reconstructions from its first batch on) without changing what it
// trains.
func TestTrainSamples(t *testing.T) {
	const steps, bs = 12, 16
	batches := testBatches(t, steps, bs)
	held := testBatches(t, steps+3, bs)[steps:]
	for _, tc := range []struct {
		name, preset string
		eval         []*sdk.Batch
		steps        []int
		n            int
	}{
		{"vae", "mnist-vae", nil, []int{0, 5, 10, 12}, 64},
		// Without held-out data a DAE shows its first training batch, so
		// it has nothing to show before it; with it, 32 held-out items.
		{"dae", "mnist-dae", nil, []int{5, 10, 12}, 2 * bs},
		{"dae-held-out", "mnist-dae", held, []int{0, 5, 10, 12}, 2 * previewItems},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := trainReq(t, tc.preset, steps, sdk.Params{"log_every": 4})
			quiet := &sdktest.Session{Req: req, Batches: batches, EvalBatches: tc.eval}
			if err := New().(*Plugin).Train(context.Background(), quiet); err != nil {
				t.Fatal(err)
			}
			req.SampleEvery = 5
			s := &sdktest.Session{Req: req, Batches: batches, EvalBatches: tc.eval}
			if err := New().(*Plugin).Train(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s.Final, quiet.Final) {
				t.Errorf("weights trained with samples differ from those trained without")
			}
			// Reading held-out data for the grids must not shift the
			// evaluations' passes.
			if tc.eval != nil {
				a, b := heldOut(quiet.Events), heldOut(s.Events)
				if a == nil || !maps.Equal(a, b) {
					t.Errorf("held-out metrics %v with samples, %v without", b, a)
				}
			}
			var got []int
			var first *sdk.Tensor
			for _, ev := range s.Events {
				if ev.Samples == nil {
					continue
				}
				got = append(got, ev.Step)
				smp := ev.Samples
				if want := []int{tc.n, 1, 28, 28}; !slices.Equal(smp.Shape, want) || ev.SampleColumns != 8 {
					t.Fatalf("step %d: samples %v in %d columns, want %v in 8", ev.Step, smp.Shape, ev.SampleColumns, want)
				}
				if first == nil {
					first = smp
					continue
				}
				if bytes.Equal(first.Data, smp.Data) {
					t.Errorf("step %d: the same samples as at step %d", ev.Step, got[0])
				}
				if tc.preset == "mnist-dae" {
					// The inputs (even cells) stay; the reconstructions change.
					for i := 0; i < tc.n; i += 2 {
						if !bytes.Equal(first.Slice(i, i+1).Data, smp.Slice(i, i+1).Data) {
							t.Fatalf("step %d: input %d changed", ev.Step, i/2)
						}
					}
				}
			}
			if !slices.Equal(got, tc.steps) {
				t.Errorf("samples at steps %v, want %v", got, tc.steps)
			}
		})
	}
}

// heldOut returns the metrics of a run's final held-out evaluation.
func heldOut(events []sdk.TrainEvent) map[string]float64 {
	for _, ev := range events {
		if ev.Message == "final held-out metrics" {
			return ev.Metrics
		}
	}
	return nil
}

// TestInferenceMemoryIsFlat: a loaded model reuses its compiled graphs, so
// many calls do not grow the heap.
func TestInferenceMemoryIsFlat(t *testing.T) {
	w := writeWeights(t, t.TempDir(), findPreset("mnist-vae").arch, nil)
	md, err := load(t, "mnist-vae", w, sdk.CapEncode, nil)
	if err != nil {
		t.Fatal(err)
	}
	x := readIdx(t, mnistTest, 64)
	enc := md.(sdk.Encoder)
	heap := func(calls int) uint64 {
		for i := 0; i < calls; i++ {
			if _, err := enc.Encode(context.Background(), &sdk.Batch{Tensor: x}); err != nil {
				t.Fatal(err)
			}
		}
		// Two collections: the first moves sync.Pool contents (the
		// kernels' scratch buffers) to the victim cache, the second frees them.
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := heap(10)
	after := heap(200)
	if after > base+1<<20 {
		t.Errorf("heap grew from %d to %d bytes over 200 calls", base, after)
	}
}

func TestGenerateChecksLatents(t *testing.T) {
	w := writeWeights(t, t.TempDir(), findPreset("mnist-vae").arch, nil)
	md, err := load(t, "mnist-vae", w, sdk.CapGenerate, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := md.(sdk.Generator)
	z := sdk.FromFloat32(make([]float32, 2*32), 2, 32)
	z.Space = "vae/mnist-ae-z16"
	if _, err := g.Generate(context.Background(), sdk.GenerateRequest{Latents: z}); err == nil || !strings.Contains(err.Error(), "vae/mnist-ae-z16") {
		t.Errorf("latents of another space: %v", err)
	}
	z = sdk.FromFloat32(make([]float32, 2*16), 2, 16)
	if _, err := g.Generate(context.Background(), sdk.GenerateRequest{Latents: z}); err == nil || !strings.Contains(err.Error(), "[N 32]") {
		t.Errorf("latents of the wrong size: %v", err)
	}
	out, err := g.Generate(context.Background(), sdk.GenerateRequest{Seeds: []uint64{1, 2, 3}})
	if err != nil || !equalInts(out.Shape, []int{3, 1, 28, 28}) {
		t.Fatalf("samples: %v %v", out, err)
	}
	// Each sample depends only on its seed, not on the batch.
	one, err := g.Generate(context.Background(), sdk.GenerateRequest{Seeds: []uint64{2}})
	if err != nil || !bytes.Equal(one.Data, out.Slice(1, 2).Data) {
		t.Errorf("sample for seed 2 differs between batches (%v)", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
