package diffusion_test

import (
	"testing"

	"github.com/genpipe/genpipe/sdk/sdktest"
)

// TestConformance builds testdata/serve (sdk.Serve(diffusion.New())), runs
// it as a real plugin process and puts it through the SDK's conformance
// checks, a short training of mnist-latent included. Inference is checked
// on the presets whose weights ship: mnist-ddpm's training is under way.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the plugin process")
	}
	sdktest.Run(t, sdktest.Config{Package: "./testdata/serve", Presets: []string{"mnist-latent"},
		TrainPreset: "mnist-latent", TrainParams: map[string]any{"log_every": 1}})
}
