package layers

import (
	"strings"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// TestParamsRoundTrip saves a BatchNorm's state like PyTorch's state_dict
// (num_batches_tracked as an int64 scalar) and loads it back; a file that
// lacks a tensor or has an extra one is refused with every problem named.
func TestParamsRoundTrip(t *testing.T) {
	ps := NewParams()
	bn := NewBatchNorm2d(ps, "bn", 3)
	nn.NewRNG(1).Normal(bn.RunningMean.Data(), 1)
	bn.NumBatchesTracked.Data()[0] = 42
	f := &safetensors.File{Tensors: ps.Tensors()}
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	g, err := safetensors.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if nbt := g.Tensor("bn.num_batches_tracked"); nbt == nil || nbt.DType != "I64" || len(nbt.Shape) != 0 {
		t.Fatalf("num_batches_tracked saved as %+v, want an I64 scalar", nbt)
	}
	qs := NewParams()
	bn2 := NewBatchNorm2d(qs, "bn", 3)
	if err := qs.Load(g); err != nil {
		t.Fatal(err)
	}
	if bn2.NumBatchesTracked.Data()[0] != 42 || bn2.RunningMean.Data()[2] != bn.RunningMean.Data()[2] {
		t.Errorf("state not restored: %v %v", bn2.NumBatchesTracked.Data(), bn2.RunningMean.Data())
	}
	g.Tensors = append(g.Tensors[1:], safetensors.F32("extra", []int{1}, []float32{0}))
	rs := NewParams()
	NewBatchNorm2d(rs, "bn", 3)
	err = rs.Load(g)
	if err == nil || !strings.Contains(err.Error(), `"extra": unexpected`) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("bad file: %v", err)
	}
}
