package vae

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// TestShippedQuality measures each embedded preset on the 10,000 MNIST
// test digits with the same evaluation the training runs used, and holds
// it to the bars the presets are documented with: the VAE's negative ELBO
// (nats per image, single seeded sample), the autoencoders' reconstruction
// error, and the DAE's PSNR gain on noisy digits. It also checks that the
// metrics recorded in the weights' metadata are what the weights give.
func TestShippedQuality(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluates 10,000 digits per preset (~10 s)")
	}
	const n = 10000
	digits := readIdx(t, mnistTest, n)
	bars := map[string]func(m map[string]float64) string{
		"mnist-vae": func(m map[string]float64) string {
			if m["test_neg_elbo"] > 100 {
				return "negative ELBO above 100 nats"
			}
			return ""
		},
		"mnist-ae": func(m map[string]float64) string {
			if m["test_bce"] > 85 {
				return "reconstruction BCE above 85 nats"
			}
			return ""
		},
		"mnist-dae": func(m map[string]float64) string {
			if m["test_gaussian_psnr_gain"] < 5 || m["test_salt_pepper_psnr_gain"] < 5 {
				return "PSNR gain under 5 dB"
			}
			return ""
		},
	}
	for _, p := range presets {
		t.Run(p.name, func(t *testing.T) {
			b, err := fs.ReadFile(shipped, p.weightsFile())
			if err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			m, err := NewModel(p.arch, nn.NewRNG(0))
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Params.Load(f); err != nil {
				t.Fatal(err)
			}
			var trainParams sdk.Params
			if err := json.Unmarshal([]byte(f.Metadata["train_params"]), &trainParams); err != nil {
				t.Fatalf("train_params metadata: %v", err)
			}
			tr := &trainer{preset: &p, m: m, params: trainParams, evals: map[int]*trainGraph{}}
			i := 0
			next := func(context.Context) (*sdk.Batch, error) {
				if i >= n {
					return nil, io.EOF
				}
				// Batches of 64 like the training runs' held-out passes: the DAE's
				// noise is drawn batch by batch.
				j := min(i+64, n)
				b := &sdk.Batch{Tensor: digits.Slice(i, j)}
				i = j
				return b, nil
			}
			got, err := tr.evaluate(context.Background(), next)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s on %d test digits: %v", p.name, n, got)
			if msg := bars[p.name](got); msg != "" {
				t.Errorf("%s: %s: %v", p.name, msg, got)
			}
			var recorded map[string]float64
			if err := json.Unmarshal([]byte(f.Metadata["metrics"]), &recorded); err != nil {
				t.Fatalf("metrics metadata: %v", err)
			}
			for k, v := range got {
				if r, ok := recorded[k]; !ok || abs(r-v) > 1e-3*(1+abs(v)) {
					t.Errorf("metadata says %s = %v, the weights give %v", k, recorded[k], v)
				}
			}
		})
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
