package optim

import (
	"math"
	"testing"

	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// TestRMSProp follows PyTorch's RMSprop update by hand for two steps, and
// restores its state from a checkpoint.
func TestRMSProp(t *testing.T) {
	ps := layers.NewParams()
	p := ps.Add("w", 2)
	copy(p.Data(), []float32{1, -2})
	r := NewRMSProp(0.1)
	g1, g2 := []float32{0.5, -1}, []float32{0.25, 2}
	r.Step([]*layers.Param{p}, [][]float32{g1})
	r.Step([]*layers.Param{p}, [][]float32{g2})
	for i, w0 := range []float64{1, -2} {
		v1 := 0.01 * float64(g1[i]) * float64(g1[i])
		w1 := w0 - 0.1*float64(g1[i])/(math.Sqrt(v1)+1e-8)
		v2 := 0.99*v1 + 0.01*float64(g2[i])*float64(g2[i])
		w2 := w1 - 0.1*float64(g2[i])/(math.Sqrt(v2)+1e-8)
		if math.Abs(float64(p.Data()[i])-w2) > 1e-4 {
			t.Errorf("w[%d] = %v, want %v", i, p.Data()[i], w2)
		}
	}
	ts, meta := r.State("opt.", []*layers.Param{p})
	f := &safetensors.File{Metadata: meta, Tensors: ts}
	b, _ := f.Encode()
	g, _ := safetensors.Decode(b)
	r2 := NewRMSProp(0.1)
	if err := r2.Restore(g, "opt.", []*layers.Param{p}); err != nil {
		t.Fatal(err)
	}
	if r2.Steps != 2 || r2.v["w"][1] != r.v["w"][1] {
		t.Errorf("restored state %d %v, want %d %v", r2.Steps, r2.v["w"], r.Steps, r.v["w"])
	}
}
