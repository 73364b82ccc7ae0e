package flow

import (
	"bytes"
	"context"
	"testing"

	"github.com/genpipe/genpipe/sdk"
)

// TestInterpolateIsExactAtTheEnds encodes two digits, asks generate for a
// 6-frame walk between them, and checks that each walk starts on its own
// digit's very pixels and ends on the other's (the flow is exact, and
// slerp's ends are the latents themselves).
func TestInterpolateIsExactAtTheEnds(t *testing.T) {
	p := findPreset("mnist-glow")
	m := gentleModel(t, p.arch, 5)
	params, errs := sdk.CheckParams(GenerateParams, map[string]any{"interpolate": 6}, "")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	md := &model{m: m, preset: p, params: params, s: newSampler(m)}
	batch := testBatches(t, 1, 2)[0]
	z, _, err := md.encode(batch)
	if err != nil {
		t.Fatal(err)
	}
	lat := sdk.FromFloat32(z, 2, m.Arch.Dims())
	lat.Space = p.space()
	out, err := md.Generate(context.Background(), sdk.GenerateRequest{Latents: lat})
	if err != nil {
		t.Fatal(err)
	}
	want := []int{2, 6, 1, 28, 28}
	if len(out.Shape) != 5 || out.Shape[0] != 2 || out.Shape[1] != 6 || out.Shape[4] != 28 {
		t.Fatalf("shape %v, want %v", out.Shape, want)
	}
	px := 28 * 28
	frame := func(item, f int) []byte { return out.Data[(item*6+f)*px : (item*6+f+1)*px] }
	image := func(i int) []byte { return batch.Tensor.Data[i*px : (i+1)*px] }
	for i := 0; i < 2; i++ {
		if !bytes.Equal(frame(i, 0), image(i)) {
			t.Errorf("walk %d: first frame is not digit %d's pixels", i, i)
		}
		if !bytes.Equal(frame(i, 5), image(1-i)) {
			t.Errorf("walk %d: last frame is not digit %d's pixels", i, 1-i)
		}
	}
	if bytes.Equal(frame(0, 3), image(0)) || bytes.Equal(frame(0, 3), image(1)) {
		t.Errorf("a middle frame equals an end: the walk does not move")
	}
}
