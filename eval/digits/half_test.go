package digits

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/genpipe/genpipe/sdk/safetensors"
)

// widen decodes every binary16 value with safetensors' decoder.
func widen(t *testing.T) []float32 {
	t.Helper()
	b := make([]byte, 2<<16)
	for h := 0; h < 1<<16; h++ {
		binary.LittleEndian.PutUint16(b[2*h:], uint16(h))
	}
	f, err := safetensors.Tensor{Name: "all", DType: "F16", Shape: []int{1 << 16}, Data: b}.Float32()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestHalfRoundTrip: every half survives widening and narrowing, and
// every float32 halfway between two neighbouring halves rounds to the
// even one.
func TestHalfRoundTrip(t *testing.T) {
	all := widen(t)
	for h, f := range all {
		got := float32ToHalf(f)
		if math.IsNaN(float64(f)) {
			if got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Errorf("NaN %#04x narrows to non-NaN %#04x", h, got)
			}
			continue
		}
		if got != uint16(h) {
			t.Errorf("%#04x (%v) narrows to %#04x", h, f, got)
		}
	}
	// Positive finite halves 0x0000..0x7bff, and each one's successor.
	for h := 0; h < 0x7bff; h++ {
		lo, hi := all[h], all[h+1]
		mid := float32((float64(lo) + float64(hi)) / 2)
		want := uint16(h)
		if h&1 == 1 {
			want = uint16(h + 1)
		}
		if got := float32ToHalf(mid); got != want {
			t.Errorf("midpoint of %#04x and %#04x (%v) narrows to %#04x, want %#04x", h, h+1, mid, got, want)
		}
		if got := float32ToHalf(-mid); got != want|0x8000 {
			t.Errorf("negative midpoint of %#04x and %#04x narrows to %#04x", h, h+1, got)
		}
		// Just above the midpoint rounds up, just below rounds down.
		if got := float32ToHalf(math.Nextafter32(mid, hi)); got != uint16(h+1) {
			t.Errorf("above the midpoint of %#04x and %#04x: %#04x", h, h+1, got)
		}
		if got := float32ToHalf(math.Nextafter32(mid, lo)); got != uint16(h) {
			t.Errorf("below the midpoint of %#04x and %#04x: %#04x", h, h+1, got)
		}
	}
	for _, c := range []struct {
		f    float32
		want uint16
	}{{65520, 0x7c00}, {math.MaxFloat32, 0x7c00}, {-1e10, 0xfc00}, {1e-10, 0}, {float32(math.Inf(1)), 0x7c00}} {
		if got := float32ToHalf(c.f); got != c.want {
			t.Errorf("%v narrows to %#04x, want %#04x", c.f, got, c.want)
		}
	}
}
