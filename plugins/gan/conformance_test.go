package gan_test

import (
	"testing"

	"github.com/genpipe/genpipe/sdk/sdktest"
)

// TestConformance builds testdata/serve (sdk.Serve(gan.New())), runs it as a
// real plugin process with the embedded weights and puts it through the
// SDK's conformance checks, a short training run included.
func TestConformance(t *testing.T) {
	sdktest.Run(t, sdktest.Config{Package: "./testdata/serve", TrainParams: map[string]any{"log_every": 1}})
}
