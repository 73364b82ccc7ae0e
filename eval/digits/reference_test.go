package digits

import (
	"math"
	"testing"
)

// TestDistortions checks the image transforms behind the reference
// distances on a single lit pixel.
func TestDistortions(t *testing.T) {
	img := make([]float32, Pixels)
	img[10*Size+12] = 1
	s := shift(img, 2, -3)
	for i, v := range s {
		want := float32(0)
		if i == 12*Size+9 {
			want = 1
		}
		if v != want {
			t.Fatalf("shift by (2, -3): pixel (%d, %d) is %v, want %v", i/Size, i%Size, v, want)
		}
	}
	if off := shift(img, 0, 20); off[10*Size+12] != 0 || sum(off) != 0 {
		t.Errorf("a pixel shifted out of the image left %v behind", sum(off))
	}
	b := blur(img)
	if math.Abs(float64(sum(b))-1) > 1e-6 || b[10*Size+12] != 0.25 || b[11*Size+13] != 0.0625 || b[10*Size+13] != 0.125 {
		t.Errorf("blur of an interior pixel: sum %v, centre %v, corner %v, edge %v", sum(b), b[10*Size+12], b[11*Size+13], b[10*Size+13])
	}
}

func sum(x []float32) float32 {
	var s float32
	for _, v := range x {
		s += v
	}
	return s
}

func TestReadMNISTErrors(t *testing.T) {
	if _, _, err := ReadMNIST(mnistDir, "validation"); err == nil {
		t.Error("unknown split accepted")
	}
	if _, _, err := ReadMNIST(t.TempDir(), "t10k"); err == nil {
		t.Error("missing files accepted")
	}
}
