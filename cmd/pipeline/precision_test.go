package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/genpipe/genpipe/plugins/vae"
	"github.com/genpipe/genpipe/sdk"
)

// latentProbe is a plugin whose generate stage "decodes" latents of the
// mnist-vae space into 1 x (4·D) gray images holding the latents' float32
// bytes, so a test can read exactly the latents a pipeline passed on from a
// lossless PNG a save stage wrote.
type latentProbe struct{}

const probeDim = 32

func (latentProbe) Describe() sdk.Description {
	return sdk.Description{
		Name: "latentprobe", Version: "1.0.0", Doc: "Writes the latents it gets as pixel bytes, for tests.",
		BatchSize:    16,
		Capabilities: []sdk.CapabilitySpec{{Name: sdk.CapGenerate, Doc: "latents -> their bytes as a 1-row gray image"}},
		Presets: []sdk.Preset{{Name: "z32", Default: true, Capabilities: []sdk.Capability{sdk.CapGenerate},
			Latent: &sdk.LatentSpec{Space: "vae/mnist-vae-z32", Dim: probeDim},
			Output: &sdk.ImageSpec{Channels: 1, Height: 1, Width: 4 * probeDim, DType: sdk.Uint8, Min: 0, Max: 255}}},
	}
}

func (latentProbe) Load(context.Context, sdk.LoadRequest) (sdk.Model, error) {
	return latentProbe{}, nil
}

func (latentProbe) Generate(_ context.Context, req sdk.GenerateRequest) (*sdk.Tensor, error) {
	z := req.Latents
	if z == nil || z.DType != sdk.Float32 || len(z.Shape) != 2 || z.Shape[1] != probeDim {
		return nil, fmt.Errorf("latentprobe: expected float32 [N %d] latents, got %v", probeDim, z)
	}
	return sdk.FromUint8(append([]byte(nil), z.Data...), z.Shape[0], 1, 1, 4*probeDim), nil
}

// TestVAEChainKeepsFloatPrecision runs encode -> decode -> encode with the
// vae plugin through a real pipeline (plugin processes, the host's item
// conversions) and checks that the final latents are those of the same
// chain computed in process in float32: the decoded images reach the second
// encode as floats, not rounded to 8 bits in between (issue 9 point 6).
func TestVAEChainKeepsFloatPrecision(t *testing.T) {
	const n = 8
	probe, err := exec.LookPath("pipeline-plugin-latentprobe")
	if err != nil {
		t.Fatalf("the latentprobe plugin is not on PATH (TestMain sets it up): %v", err)
	}
	mnist := filepath.Join(repoRoot, "examples", "data", "mnist", "t10k-images-idx3-ubyte.gz")
	root := t.TempDir()
	file := filepath.Join(root, "chain.yaml")
	yaml := fmt.Sprintf(`version: 1
name: vae-chain
seed: 3
plugins:
  latentprobe: {path: %q}
stages:
  - id: digits
    load: {idx: %q, limit: %d}
  - id: codes
    encode: {model: vae, preset: mnist-vae}
  - id: decoded
    generate: {model: vae, preset: mnist-vae}
  - id: recoded
    encode: {model: vae, preset: mnist-vae}
  - id: probe
    generate: {model: latentprobe}
  - id: out
    save: {dir: out, name: "z-{index:03}", format: png}
`, probe, mnist, n)
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	mark := newMark(t.Name())
	t.Cleanup(func() { killStray(mark) })
	env := append(os.Environ(), markEnv+"="+mark, "PIPELINE_PLUGIN_PATH=", "XDG_DATA_HOME="+filepath.Join(root, "xdg"))
	cmd := exec.Command(pipelineExe(t), "run", "--progress", "none", file)
	cmd.Dir, cmd.Env = root, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pipeline run: %v\n%s", err, out)
	}
	if left := waitNoPlugins(mark, 5*time.Second); len(left) > 0 {
		t.Errorf("plugin processes left after run: %v", left)
	}
	got := make([][]float32, n)
	for i := range got {
		got[i] = readProbe(t, filepath.Join(root, "out", fmt.Sprintf("z-%03d.png", i)))
	}

	// The same chain in process, in float32: the vae plugin's own model.
	x := readIdx(t, mnist, n)
	enc, dec := loadVAE(t, sdk.CapEncode), loadVAE(t, sdk.CapGenerate)
	ctx := context.Background()
	z0, err := enc.(sdk.Encoder).Encode(ctx, &sdk.Batch{Tensor: x})
	if err != nil {
		t.Fatal(err)
	}
	img, err := dec.(sdk.Generator).Generate(ctx, sdk.GenerateRequest{Latents: z0})
	if err != nil {
		t.Fatal(err)
	}
	if img.DType != sdk.Float32 {
		t.Fatalf("the vae decodes to %s, expected float32", img.DType)
	}
	want := encodeRows(t, enc, img)
	// What the chain gave when the images crossed in 8 bits.
	q := sdk.NewTensor(sdk.Uint8, img.Shape...)
	for i, v := range img.Float32s() {
		q.Data[i] = uint8(min(max(v, 0), 1)*255 + 0.5)
	}
	via8 := encodeRows(t, enc, q)

	maxDiff, max8 := 0.0, 0.0
	for i := range got {
		for j := range got[i] {
			maxDiff = max(maxDiff, math.Abs(float64(got[i][j]-want[i][j])))
			max8 = max(max8, math.Abs(float64(via8[i][j]-want[i][j])))
		}
	}
	t.Logf("max |pipeline - float32 in process| = %g; through 8 bits it would be %g", maxDiff, max8)
	if maxDiff > 1e-5 {
		t.Errorf("the pipeline's latents differ from the in-process float32 chain by up to %g (through 8 bits: %g)", maxDiff, max8)
	}
	if max8 < 1e-4 {
		t.Errorf("rounding the decoded images to 8 bits changes the latents by %g only: the test cannot tell the paths apart", max8)
	}
}

func loadVAE(t *testing.T, c sdk.Capability) sdk.Model {
	t.Helper()
	p := vae.New()
	d := p.Describe()
	params, errs := sdk.CheckParams(d.Capability(c).Params, nil, "")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	m, err := p.Load(context.Background(), sdk.LoadRequest{Capability: c, Preset: "mnist-vae", Params: params})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func encodeRows(t *testing.T, enc sdk.Model, x *sdk.Tensor) [][]float32 {
	t.Helper()
	z, err := enc.(sdk.Encoder).Encode(context.Background(), &sdk.Batch{Tensor: x})
	if err != nil {
		t.Fatal(err)
	}
	v, d := z.Float32s(), z.Shape[1]
	rows := make([][]float32, z.Shape[0])
	for i := range rows {
		rows[i] = v[i*d : (i+1)*d]
	}
	return rows
}

// readProbe reads the latents a latentprobe image holds.
func readProbe(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	g, ok := img.(*image.Gray)
	if !ok || len(g.Pix) != 4*probeDim {
		t.Fatalf("%s: %T of %v, expected a 1x%d gray image", path, img, img.Bounds(), 4*probeDim)
	}
	z := make([]float32, probeDim)
	for j := range z {
		z[j] = math.Float32frombits(binary.LittleEndian.Uint32(g.Pix[4*j:]))
	}
	return z
}

// readIdx reads the first n images of an MNIST idx file as a uint8 NCHW tensor.
func readIdx(t *testing.T, path string, n int) *sdk.Tensor {
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
	buf := make([]byte, n*28*28)
	if _, err := io.ReadFull(zr, buf); err != nil {
		t.Fatal(err)
	}
	return sdk.FromUint8(buf, n, 1, 28, 28)
}
