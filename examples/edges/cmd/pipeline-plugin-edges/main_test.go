package main

import (
	"context"
	"testing"

	"github.com/genpipe/genpipe/examples/edges"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

// TestConformance builds this command, runs it as a real plugin process and
// puts it through the SDK's conformance checks.
func TestConformance(t *testing.T) {
	sdktest.Run(t, sdktest.Config{Package: "."})
}

// BenchmarkTranslate compares one 16 x 256x256 RGB canny batch in process
// with the same batch through the plugin process (what the boundary costs).
func BenchmarkTranslate(b *testing.B) {
	img := make([]uint8, 16*3*256*256)
	for i := range img {
		x, y := i%256, i/256%256
		img[i] = uint8((x*x+y*y)/300%2*150 + (x*7+y*3)%40) // rings with texture
	}
	in := &sdk.Batch{Tensor: sdk.FromUint8(img, 16, 3, 256, 256)}
	ctx := context.Background()
	b.Run("in-process", func(b *testing.B) {
		m, err := edges.New().Load(ctx, sdk.LoadRequest{Capability: sdk.CapTranslate})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(img)))
		for b.Loop() {
			if _, err := m.(sdk.Translator).Translate(ctx, in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plugin", func(b *testing.B) {
		p := sdktest.Start(b, sdktest.Config{Package: "."})
		h, err := p.Client.Load(ctx, sdk.LoadRequest{Capability: sdk.CapTranslate})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(img)))
		for b.Loop() {
			if _, err := p.Client.Translate(ctx, h, in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
