package diffusion

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/eval/digits"
	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/plugins/vae"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/safetensors"
	"github.com/hashicorp/go-hclog"
)

var (
	latentWeights = flag.String("latent-weights", "", "mnist-latent weights to measure instead of the shipped ones")
	latentCkpt    = flag.String("latent-ckpt", "", "a pipeline train checkpoint of mnist-latent whose moving average to measure")
)

// TestLatentQuality measures mnist-latent chained with the VAE, as the
// diffusion issue asks: 1,000 latents drawn by the diffusion model (DDIM
// 50, guidance 2, labels 0-9 in turn) and decoded by mnist-vae, against
// the VAE's own prior samples and its reconstructions of 1,000 real test
// digits, by the Frechet distance of eval/digits' classifier features to
// MNIST test. Bars: at most 0.6x the prior samples' distance, within 1.2x
// of the reconstructions'.
func TestLatentQuality(t *testing.T) {
	if testing.Short() {
		t.Skip("samples, decodes and classifies thousands of digits")
	}
	p := findPreset("mnist-latent")
	m, err := NewModel(p.arch, nn.NewRNG(0))
	if err != nil {
		t.Fatal(err)
	}
	var f *safetensors.File
	if *latentCkpt != "" {
		c, err := readCheckpointEMA(*latentCkpt)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: step %s", *latentCkpt, c.Metadata["step"])
		f = &safetensors.File{Metadata: c.Metadata}
		for _, ts := range c.Tensors {
			if name, ok := strings.CutPrefix(ts.Name, "ema."); ok {
				ts.Name = name
				f.Tensors = append(f.Tensors, ts)
			}
		}
	} else if *latentWeights != "" {
		if f, err = safetensors.ReadFile(*latentWeights); err != nil {
			t.Fatal(err)
		}
	} else {
		b, err := fs.ReadFile(shipped, p.weightsFile())
		if err != nil {
			t.Skip("no shipped mnist-latent weights yet; measure a candidate with -latent-weights FILE")
		}
		if f, err = safetensors.Decode(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Params.Load(f); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	load := func(c sdk.Capability, params []sdk.Param) sdk.Model {
		full, _ := sdk.CheckParams(params, nil, "")
		md, err := vae.New().Load(ctx, sdk.LoadRequest{Capability: c, Preset: "mnist-vae", Params: full, Logger: hclog.NewNullLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return md
	}
	dec := load(sdk.CapGenerate, vae.GenerateParams).(sdk.Generator)
	enc := load(sdk.CapEncode, vae.EncodeParams).(sdk.Encoder)
	clf, err := digits.Load()
	if err != nil {
		t.Fatal(err)
	}
	testX, _, err := digits.ReadMNIST("../../examples/data/mnist", "t10k")
	if err != nil {
		t.Fatal(err)
	}
	_, testFeats, err := clf.Classify(testX, len(testX)/digits.Pixels)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	fd := func(name string, img *sdk.Tensor, labels []int) float64 {
		var px []float32
		if img.DType == sdk.Float32 {
			px = img.Float32s()
		} else {
			px = make([]float32, len(img.Data))
			for i, v := range img.Data {
				px[i] = float32(v) / 255
			}
		}
		probs, feats, err := clf.Classify(px, n)
		if err != nil {
			t.Fatal(err)
		}
		d, err := digits.FrechetDistance(feats, testFeats)
		if err != nil {
			t.Fatal(err)
		}
		msg := ""
		if labels != nil {
			msg = ", labels kept " + pct(digits.LabelAgreement(probs, labels))
		}
		t.Logf("%s: Frechet distance %.1f, class entropy %.3f bits%s", name, d, digits.ClassEntropy(probs), msg)
		return d
	}
	seeds := make([]uint64, n)
	labels := make([]int, n)
	for i := range seeds {
		seeds[i], labels[i] = uint64(i), i%10
	}
	prior, err := dec.Generate(ctx, sdk.GenerateRequest{Seeds: seeds})
	if err != nil {
		t.Fatal(err)
	}
	fdPrior := fd("mnist-vae prior samples", prior, nil)
	px := make([]uint8, n*digits.Pixels)
	for i := range px {
		px[i] = uint8(testX[i]*255 + 0.5)
	}
	real := sdk.FromUint8(px, n, 1, 28, 28)
	z, err := enc.Encode(ctx, &sdk.Batch{Tensor: real, Seeds: seeds})
	if err != nil {
		t.Fatal(err)
	}
	recon, err := dec.Generate(ctx, sdk.GenerateRequest{Seeds: seeds, Latents: z})
	if err != nil {
		t.Fatal(err)
	}
	fdRecon := fd("mnist-vae reconstructions of test digits", recon, nil)
	md := &model{m: m, preset: p, s: newSampler(m)}
	defer md.Close()
	full, _ := sdk.CheckParams(GenerateParams, sdk.Params{"steps": 50, "guidance": 2.0}, "")
	md.params = full
	lat, err := md.Generate(ctx, sdk.GenerateRequest{Seeds: seeds, Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	img, err := dec.Generate(ctx, sdk.GenerateRequest{Seeds: seeds, Latents: lat})
	if err != nil {
		t.Fatal(err)
	}
	fdLDM := fd("mnist-latent (DDIM 50, guidance 2) decoded by mnist-vae", img, labels)
	t.Logf("latent diffusion / prior: %.2fx (bar 0.6x); / reconstructions: %.2fx (bar 1.2x)", fdLDM/fdPrior, fdLDM/fdRecon)
	if fdLDM > 0.6*fdPrior {
		t.Errorf("latent diffusion's distance %.1f is above 0.6x the prior samples' %.1f", fdLDM, fdPrior)
	}
	if fdLDM > 1.2*fdRecon {
		t.Errorf("latent diffusion's distance %.1f is above 1.2x the reconstructions' %.1f", fdLDM, fdRecon)
	}
}

func pct(v float64) string { return fmt.Sprintf("%.1f %%", 100*v) }
