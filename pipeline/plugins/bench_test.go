package plugins_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/genpipe/genpipe/pipeline/plugins"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

// The plugin boundary's cost. Run with
//
//	go test -run '^$' -bench . -benchtime 2s ./pipeline/plugins
//
// Each throughput benchmark has a "plugin" case (a real process, through
// Manager/Model with supervision) and an "inprocess" case (the same
// translator called directly); the difference is what the boundary adds.

// BenchmarkEmptyCall is the latency of one call carrying one 1x3x1x1 image
// through a real plugin process, with its median and p99.
func BenchmarkEmptyCall(b *testing.B) {
	m, _ := newManager(b)
	p := open(b, m, plugins.Ref{Name: "testplug"})
	mdl := load(b, p, sdk.CapTranslate, "rgb8", nil)
	in := &sdk.Batch{Tensor: images(1, 3, 1, 1, 1)}
	c := context.Background()
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := mdl.Translate(c, in); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
}

func BenchmarkGray28x64Edges(b *testing.B) {
	benchTranslate(b, "gray28", sdk.Params{"op": "edges"}, images(64, 1, 28, 28, 1))
}

func BenchmarkRGB256x16Edges(b *testing.B) {
	benchTranslate(b, "rgb8", sdk.Params{"op": "edges"}, images(16, 3, 256, 256, 1))
}

// BenchmarkRGB256x16Copy uses the identity translator: nearly all of the
// plugin case is transport.
func BenchmarkRGB256x16Copy(b *testing.B) {
	benchTranslate(b, "rgb8", nil, images(16, 3, 256, 256, 1))
}

func benchTranslate(b *testing.B, preset string, params sdk.Params, in *sdk.Tensor) {
	batch := &sdk.Batch{Tensor: in}
	c := context.Background()
	b.Run("plugin", func(b *testing.B) {
		m, _ := newManager(b)
		p := open(b, m, plugins.Ref{Name: "testplug"})
		mdl := load(b, p, sdk.CapTranslate, preset, params)
		b.SetBytes(int64(len(in.Data)))
		for b.Loop() {
			if _, err := mdl.Translate(c, batch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("inprocess", func(b *testing.B) {
		plug := sdktest.NewTestPlugin("testplug")
		desc := plug.Describe()
		spec := desc.Capability(sdk.CapTranslate)
		checked, errs := sdk.CheckParams(spec.Params, params, "")
		if len(errs) > 0 {
			b.Fatal(errs)
		}
		model, err := plug.Load(c, sdk.LoadRequest{Capability: sdk.CapTranslate, Preset: preset, Params: checked})
		if err != nil {
			b.Fatal(err)
		}
		tr := model.(sdk.Translator)
		b.SetBytes(int64(len(in.Data)))
		for b.Loop() {
			if _, err := tr.Translate(c, batch); err != nil {
				b.Fatal(err)
			}
		}
	})
}
