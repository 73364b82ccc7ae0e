package job

import (
	"image"
	"math"
	"slices"
	"testing"

	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/sdk"
)

// TestOrder: each epoch's order is a permutation fixed by (seed, epoch)
// alone, different between epochs and seeds; without shuffle it is the
// load order.
func TestOrder(t *testing.T) {
	const n = 100
	a := order(n, true, 7, 0)
	if !slices.Equal(a, order(n, true, 7, 0)) {
		t.Fatal("the same seed and epoch gave two orders")
	}
	sorted := slices.Clone(a)
	slices.Sort(sorted)
	if !slices.Equal(sorted, order(n, false, 7, 0)) {
		t.Fatalf("not a permutation of 0..%d: %v", n-1, a)
	}
	if slices.Equal(a, sorted) || slices.Equal(a, order(n, true, 7, 1)) || slices.Equal(a, order(n, true, 8, 0)) {
		t.Error("the order does not change with the epoch and the seed")
	}
	if got := order(1, true, 7, 3); !slices.Equal(got, []int{0}) {
		t.Errorf("one item: %v", got)
	}
}

// TestPackLatents: a preset whose data are latents gets the items'
// latents as one float32 N x D tensor of their space, bit for bit (no
// quantisation on the way); items without latents, or with latents of
// another space, dim or dtype, are refused by name.
func TestPackLatents(t *testing.T) {
	want := &sdk.LatentSpec{Space: "vae/z3", Dim: 3}
	d := &dataset{stage: "codes", latent: want}
	lat := func(space string, v ...float32) *sdk.Tensor {
		l := sdk.FromFloat32(v, 1, len(v))
		l.Space = space
		return l
	}
	// Values an 8-bit round trip would change.
	vals := [][]float32{{-3.25, 1e-7, 0.1}, {float32(math.Pi), -0, 12345.678}}
	items := []item.Item{
		{Index: 4, Name: "a", Latent: lat("vae/z3", vals[0]...)},
		{Index: 9, Name: "b", Latent: lat("vae/z3", vals[1]...)},
	}
	got, err := d.pack(items)
	if err != nil {
		t.Fatal(err)
	}
	if got.DType != sdk.Float32 || !slices.Equal(got.Shape, []int{2, 3}) || got.Space != "vae/z3" {
		t.Fatalf("packed %s %v space %q, want float32 [2 3] space vae/z3", got.DType, got.Shape, got.Space)
	}
	for i, v := range got.Float32s() {
		if w := vals[i/3][i%3]; math.Float32bits(v) != math.Float32bits(w) {
			t.Errorf("value %d is %v, want %v", i, v, w)
		}
	}
	bad := []struct {
		it   item.Item
		want string
	}{
		{item.Item{Index: 1, Name: "img", Image: image.NewGray(image.Rect(0, 0, 2, 2))}, `item 1 "img" has no latent: the preset trains on latents of space "vae/z3"`},
		{item.Item{Index: 2, Name: "other", Latent: lat("vae/w3", 1, 2, 3)}, `item 2 "other": latent [1 3] of space "vae/w3", expected [1 3] of space "vae/z3"`},
		{item.Item{Index: 3, Name: "short", Latent: lat("vae/z3", 1, 2)}, `item 3 "short": latent [1 2] of space "vae/z3", expected [1 3] of space "vae/z3"`},
		{item.Item{Index: 5, Name: "u8", Latent: &sdk.Tensor{Shape: []int{1, 3}, DType: sdk.Uint8, Data: []byte{1, 2, 3}, Space: "vae/z3"}}, `item 5 "u8": latent of dtype uint8, expected float32`},
	}
	for _, b := range bad {
		_, err := d.pack([]item.Item{items[0], b.it})
		if err == nil || err.Error() != b.want {
			t.Errorf("%s: got error %v, want %q", b.it.Name, err, b.want)
		}
	}
}
