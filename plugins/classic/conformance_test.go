package classic_test

import (
	"testing"

	"github.com/genpipe/genpipe/sdk/sdktest"
)

// TestConformance builds testdata/serve (sdk.Serve(classic.New())), runs it
// as a real plugin process and puts it through the SDK's conformance checks.
func TestConformance(t *testing.T) {
	sdktest.Run(t, sdktest.Config{Package: "./testdata/serve"})
}
