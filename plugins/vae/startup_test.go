package vae_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

// BenchmarkStartup is a plugin's cold start as the host sees it: launch
// the process, handshake, load the embedded mnist-vae weights, and make
// the first call (which compiles the decoder graph), per iteration.
//
//	go test -run XXX -bench Startup ./plugins/vae
func BenchmarkStartup(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "vae-plugin")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/serve").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	ctx := context.Background()
	var load, first time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		p := sdktest.Start(b, sdktest.Config{Command: []string{bin}})
		h, err := p.Client.Load(ctx, sdk.LoadRequest{Capability: sdk.CapGenerate, Preset: "mnist-vae"})
		if err != nil {
			b.Fatal(err)
		}
		load += time.Since(t0)
		if _, err := p.Client.Generate(ctx, h, sdk.GenerateRequest{Seeds: []uint64{1}}); err != nil {
			b.Fatal(err)
		}
		first += time.Since(t0)
		b.StopTimer()
		p.Kill()
		b.StartTimer()
	}
	b.ReportMetric(float64(load.Microseconds())/1000/float64(b.N), "ms-to-loaded")
	b.ReportMetric(float64(first.Microseconds())/1000/float64(b.N), "ms-to-first-image")
}
